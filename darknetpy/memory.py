"""How much memory training a cfg takes, known before anything is allocated."""
from __future__ import annotations

from typing import Optional

from . import _libdarknet
from .errors import InputError
from .paths import PathLike, existing_file

_ENGINE = ("weights", "optimizer_state", "activations", "deltas", "workspace")


def estimate_training_memory(cfg: PathLike, *, batch: Optional[int] = None, subdivisions: Optional[int] = None,
                             width: Optional[int] = None, height: Optional[int] = None) -> dict:
    """Bytes a training network of ``cfg`` allocates (``Network(cfg, batch=None)`` then
    ``train_step``), by category, computed from the layer shapes without allocating them.

    ``batch``, ``subdivisions``, ``width`` and ``height`` replace the cfg's ``[net]`` values
    (width and height together). Keys: ``weights`` (parameters and the layers' fixed
    arrays), ``optimizer_state`` (momentum arrays of the trained parameters), ``activations``
    (layer outputs, input and truth buffers, per-layer training scratch), ``deltas``,
    ``workspace``; ``network`` their sum; ``data`` one iteration's images and truth as the
    float32 arrays ``train_step`` takes (held by the caller); ``total`` = network + data;
    ``per_image`` of the network's bytes per mini-batch image; and the resolved ``batch``,
    ``subdivisions``, ``minibatch``, ``width``, ``height``.

    Building a training network checks ``network`` against the memory available (or
    ``max_memory``) first and raises OutOfMemoryError naming the smallest ``subdivisions``
    (or else the input size) that fits.
    """
    values = {"batch": batch, "subdivisions": subdivisions, "width": width, "height": height}
    for name, v in values.items():
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise InputError(f"{name} must be a positive int or None (the cfg's value), not {v!r}")
    if (width is None) != (height is None):
        raise InputError("give width and height together")
    m = _libdarknet.estimate_training_memory(existing_file(cfg, "cfg"), *(v or 0 for v in values.values()))
    out = {"weights": m["weights"], "optimizer_state": m["optimizer"], "activations": m["activations"],
           "deltas": m["deltas"], "workspace": m["workspace"]}
    out["network"] = sum(out[k] for k in _ENGINE)
    out["data"] = 4 * m["batch"] * (m["inputs"] + m["truths"])
    out["total"] = out["network"] + out["data"]
    out.update({k: m[k] for k in ("per_image", "batch", "subdivisions", "minibatch", "width", "height")})
    return out


def check_training_memory(cfg: PathLike, max_memory: Optional[int] = None) -> None:
    """Raise the OutOfMemoryError a training build of ``cfg`` would raise (naming the smallest
    ``subdivisions``, or else the input size, that fits in ``max_memory`` bytes or in the memory
    available now), without building anything."""
    if max_memory is not None and (isinstance(max_memory, bool) or not isinstance(max_memory, int)
                                   or max_memory < 1):
        raise InputError(f"max_memory must be a positive number of bytes or None, not {max_memory!r}")
    _libdarknet.check_training_fits(existing_file(cfg, "cfg"), max_memory or 0)
