"""Data-parallel training of one cfg on several devices (issue 10: ``-gpus 0,1``)."""
from __future__ import annotations

import contextlib
from typing import Optional, Sequence

from . import _libdarknet
from .errors import InputError
from .network import Network, PathLike


class DataParallel:
    """One cfg trained on several devices at once, e.g. ``devices=("cuda:0", "cuda:1")``.

    Each device holds a training network (``batch=None``) with the same parameters;
    :meth:`train_step` takes ``images_per_step`` images (each device's ``batch * subdivisions``,
    in device order), runs every device's share in parallel, sums the gradients across devices
    (NCCL on GPUs, the ``nvidia-nccl-cu13`` wheel) and applies one update of all the images on
    each, so the weights stay equal; batch-norm statistics are each device's own (as darknet's).
    :attr:`network` (the first device's) saves weights and answers queries.
    """

    def __init__(self, cfg: PathLike, weights: Optional[PathLike] = None,
                 devices: Sequence[str] = ("cuda:0", "cuda:1"), *, threads: Optional[int] = None):
        if not devices:
            raise ValueError("devices must name at least one device")
        self.networks: list = []
        try:
            for device in devices:
                self.networks.append(Network(cfg, weights, batch=None, threads=threads, device=device))
        except BaseException:
            self.close()
            raise

    @property
    def network(self) -> Network:
        return self.networks[0]

    @property
    def images_per_step(self) -> int:
        net = self.networks[0]
        return len(self.networks) * net.batch * net.subdivisions

    def train_step(self, x, y) -> float:
        """One iteration over ``images_per_step`` images: x float32 (N, C, H, W), y their truth as for
        :meth:`Network.train_step`. Returns darknet's per-image loss."""
        net = self.networks[0]
        x = net._as_batch(x)
        if len(x) != self.images_per_step:
            raise InputError(f"train_step needs {self.images_per_step} images ({len(self.networks)} devices x "
                             f"batch {net.batch} x subdivisions {net.subdivisions}); got {len(x)}")
        y = net._truth(y, len(x), "train_step")
        with contextlib.ExitStack() as stack:
            for n in self.networks:
                stack.enter_context(n._lock)
            return _libdarknet.train_step_parallel([n._handle for n in self.networks], x, y)

    def save_weights(self, path: PathLike) -> None:
        self.network.save_weights(path)

    def close(self) -> None:
        for net in self.networks:
            net.close()

    def __enter__(self) -> "DataParallel":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
