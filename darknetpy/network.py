"""The engine object: a darknet network built from a .cfg, with .weights I/O."""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Optional, Union

import numpy as np

from . import _libdarknet
from .errors import InputError, OutOfMemoryError
from .paths import checked_path, existing_file

PathLike = Union[str, os.PathLike]

__all__ = ["Network", "LayerInfo", "partial"]

_TABLE_HEADER = "   layer   filters  size/strd(dil)      input                output"


@dataclass(frozen=True)
class LayerInfo:
    """One row of darknet's layer table. Shapes are (channels, height, width)."""
    index: int
    type: str
    kind: int
    caps: frozenset     # what the kind can do: "weights", "trainable", "cost", "detection", "classifier"
    input_layers: tuple  # indices of the layers it reads, -1 = the network input
    input_shape: tuple
    output_shape: tuple
    inputs: int
    outputs: int
    batch_normalize: bool
    n_weights: int
    bflops: float
    summary: str

    def __str__(self) -> str:
        return f"{self.index:4d} {self.summary}"


class Network:
    """A darknet network built from a ``.cfg`` file, optionally with ``.weights``.

    ``batch=1`` (or any positive int) builds an inference network for that many
    images per forward, with batch norm folded into the convolutions when
    ``fuse`` is true (what darknet's ``classifier predict``/``valid`` do).
    ``batch=None`` builds the cfg's mini-batch (batch/subdivisions) with training
    buffers, for :meth:`train_step`. ``threads`` sets this network's CPU threads;
    ``max_memory`` (bytes) refuses, with OutOfMemoryError naming the batch that fits, a
    network that would need more (the engine always refuses more than the machine has).

    Calls on one Network are serialised by a lock and release the GIL inside
    the engine; for parallel throughput use one Network per thread. Results are
    new arrays that stay valid after the next call. Use ``close()`` or ``with``
    to free the engine's memory at once.
    """

    def __init__(self, cfg: PathLike, weights: Optional[PathLike] = None, batch: Optional[int] = 1, *,
                 fuse: bool = True, threads: Optional[int] = None, strict: bool = False,
                 max_memory: Optional[int] = None):
        if batch is not None and (not isinstance(batch, (int, np.integer)) or batch < 1):
            raise ValueError(f"batch must be a positive int or None (the cfg's batch), not {batch!r}")
        _check_threads(threads)
        self.cfg_path = existing_file(cfg, "cfg")
        self.weights_path: Optional[str] = None
        self._lock = threading.Lock()
        self._handle = _libdarknet.NetworkHandle(self.cfg_path, 0 if batch is None else int(batch))
        if max_memory is not None:
            self._check_memory(int(max_memory))
        if threads is not None:
            self._handle.set_threads(int(threads))
        if fuse:
            self._handle.prepare()  # C keeps the prepared state up to date from here on
        self._last_n = 0
        self._read_shapes()
        if weights is not None:
            self.load_weights(weights, strict=strict)

    def _check_memory(self, limit: int) -> None:
        """Refuse a network that needs more than ``limit`` bytes (nothing is touched yet:
        the engine reserves memory lazily). The engine itself refuses what the machine lacks."""
        need = self._handle.memory()
        total = sum(need.values())
        if total <= limit:
            return
        info = self._handle.info()
        per_image = need["activations"] / info["batch"]
        fits = int((limit - total + need["activations"]) // per_image) if per_image else 0
        self._handle.close()
        hint = (f"a batch of {fits} fits" if fits >= 1 else "the weights alone do not fit: use a smaller model "
                "or input size")
        raise OutOfMemoryError(f"{self.cfg_path}: the network with batch {info['batch']} needs {total >> 20} MiB, "
                               f"more than max_memory={limit >> 20} MiB; {hint}")

    def _read_shapes(self) -> None:
        info = self._handle.info()
        self.width: int = info["width"]
        self.height: int = info["height"]
        self.channels: int = info["channels"]
        self.batch: int = info["batch"]
        self.subdivisions: int = info["subdivisions"]
        self.inputs: int = info["inputs"]
        self.outputs: int = info["outputs"]
        self.output_layer: int = info["output_layer"]
        self.layers: tuple = tuple(LayerInfo(**self._handle.layer_info(i)) for i in range(info["n_layers"]))

    # ---- metadata ------------------------------------------------------
    @property
    def info(self) -> dict:
        """The [net] values as parsed (learning rate, augmentation, counters, ...)."""
        with self._lock:
            return self._handle.info()

    @property
    def classes(self) -> Optional[int]:
        """Number of classes of a classifier (outputs of its last layer), None for other networks."""
        last = self.layers[self.output_layer]
        return last.outputs if "classifier" in last.caps else None

    @property
    def input_shape(self) -> tuple:
        return (self.channels, self.height, self.width)

    @property
    def seen(self) -> int:
        """Images seen in training (the weights header's counter)."""
        return self.info["seen"]

    @property
    def iteration(self) -> int:
        return self.info["cur_iteration"]

    def summary(self) -> str:
        """darknet's layer table (spec Appendix A)."""
        rows = [_TABLE_HEADER] + [str(layer) for layer in self.layers]
        rows.append(f"Total BFLOPS {sum(layer.bflops for layer in self.layers):5.3f} ")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"<darknetpy.Network {self.cfg_path!r} batch={self.batch}>\n{self.summary()}"

    # ---- weights -------------------------------------------------------
    def load_weights(self, path: PathLike, upto: Optional[int] = None, *, strict: bool = False) -> int:
        """Load a darknet .weights file into layers [0, upto); returns darknet's
        "Loaded N layers" count. A file shorter or longer than the network's records
        (truncated, or made for another cfg) loads what it holds, as darknet does, with
        a WARNING log; ``strict=True`` raises :class:`WeightsError` instead (the layers
        read before the error keep the file's values)."""
        path = existing_file(path, "weights")
        with self._lock:
            loaded = self._handle.load_weights(path, 0 if upto is None else int(upto), bool(strict))
        self.weights_path = path
        return loaded

    def save_weights(self, path: PathLike, upto: Optional[int] = None) -> None:
        """Write layers [0, upto) in darknet's format, atomically (temp file + rename).
        A symbolic link is written through (its target is replaced); a directory or
        device raises OSError."""
        path = checked_path(path, "weights")
        with self._lock:
            self._handle.save_weights(path, 0 if upto is None else int(upto))

    def set_counters(self, seen: int, iteration: int) -> None:
        """Set the training counters written in the weights header."""
        with self._lock:
            self._handle.set_counters(int(seen), int(iteration))

    # ---- inference -----------------------------------------------------
    def _as_batch(self, x) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.float32:
            raise TypeError(f"predict takes float32 (C,H,W) or (N,C,H,W) RGB in [0,1], not {x.dtype}; "
                            "use darknetpy.Classifier or darknetpy.image to preprocess uint8 images")
        if x.ndim == 3:
            x = x[None]
        if x.ndim != 4 or x.shape[1:] != self.input_shape:
            raise InputError(f"input shape {x.shape} does not fit the network: expected (C,H,W) or (N,C,H,W) "
                             f"with (C,H,W) = {self.input_shape}")
        if len(x) == 0:
            raise InputError(f"the batch {x.shape} holds no image; pass at least one (C,H,W) image")
        return np.ascontiguousarray(x.reshape(len(x), -1))

    def predict(self, x) -> np.ndarray:
        """Forward float32 (C,H,W) or (N,C,H,W) RGB in [0,1]; returns a new (N, outputs) array of the
        last non-[cost] layer. Runs in chunks of the network's batch; the GIL is released."""
        x = self._as_batch(x)
        out = np.empty((len(x), self.outputs), dtype=np.float32)
        with self._lock:
            for start in range(0, len(x), self.batch):
                chunk = x[start:start + self.batch]
                self._handle.forward(chunk)
                out[start:start + len(chunk)] = self._handle.layer_output(self.output_layer)[
                    :len(chunk) * self.outputs].reshape(len(chunk), -1)
            self._last_n = len(x) - (len(x) - 1) // self.batch * self.batch
        return out

    __call__ = predict

    def layer_output(self, index: int) -> np.ndarray:
        """Layer ``index``'s output of the last forward chunk as a new (N, c, h, w) array
        ((N, outputs, 1, 1) for layers without an image shape)."""
        layer = self.layers[index]
        with self._lock:
            data = self._handle.layer_output(index)
        n = max(self._last_n, 1)
        c, h, w = layer.output_shape
        shape = (n, c, h, w) if c * h * w == layer.outputs else (n, layer.outputs, 1, 1)
        return data[:n * layer.outputs].reshape(shape)

    # ---- training ------------------------------------------------------
    def train_step(self, x, y) -> float:
        """One darknet iteration (spec §4.1): x float32 (batch*subdivisions, C, H, W),
        y float32 (same N, outputs) truth; returns darknet's per-image loss. Afterwards
        :meth:`layer_output` holds the training-mode outputs of the last mini-batch."""
        x = self._as_batch(x)
        y = np.ascontiguousarray(y, dtype=np.float32)
        need = self.batch * self.subdivisions
        if len(x) != need or y.shape != (need, self.outputs):
            raise InputError(f"train_step needs {need} images (batch/subdivisions mini-batch x subdivisions) "
                             f"and truth ({need}, {self.outputs}); got {x.shape[0]} and {y.shape}")
        with self._lock:
            loss = self._handle.train_step(x, y)
            self._last_n = self.batch
        return loss

    # ---- gradient inspection (tests, debugging) ----------------------------
    def backward(self, x, y, input_delta: bool = False) -> tuple:
        """One training-mode forward and backward of a single mini-batch (``batch`` samples)
        without an update or counter change. Returns ``(loss, delta)``: the mini-batch's
        darknet cost (spec §4.2) and, with ``input_delta=True``, the input's delta as
        (batch, C, H, W), else None. Afterwards :meth:`param_delta` gives each parameter's
        delta of this mini-batch (momentum is discarded). Deltas follow darknet's sign
        convention: they are NEGATIVE gradients."""
        x = self._as_batch(x)
        y = np.ascontiguousarray(y, dtype=np.float32)
        if len(x) != self.batch or y.shape != (self.batch, self.outputs):
            raise InputError(f"backward needs one mini-batch: {self.batch} images and truth "
                             f"({self.batch}, {self.outputs}); got {x.shape[0]} and {y.shape}")
        with self._lock:
            loss, delta = self._handle.backward(x, y, input_delta)
            self._last_n = self.batch
        return loss, None if delta is None else delta.reshape((self.batch,) + self.input_shape)

    def layer_attrs(self, layer: int) -> dict:
        """The hyper-parameters layer ``layer`` was built with, as the engine resolved them
        (cfg values and defaults): e.g. ``{"size": 3, "stride_x": 1, ..., "activation": "leaky"}``
        for a convolution, ``mask``/``anchors`` tuples for a [yolo] layer."""
        with self._lock:
            return self._handle.layer_attrs(int(layer))

    def param(self, layer: int, name: str) -> np.ndarray:
        """A copy of parameter array ``name`` ("weights", "biases", "scales", "rolling_mean",
        "rolling_variance") of layer ``layer``, flat, in .weights order."""
        with self._lock:
            return self._handle.param(int(layer), name)[0]

    def param_delta(self, layer: int, name: str) -> Optional[np.ndarray]:
        """A copy of the update accumulator of a parameter array (after :meth:`backward`: its
        negative gradient), or None for arrays that are not trained (rolling statistics)."""
        with self._lock:
            return self._handle.param(int(layer), name)[1]

    def set_param(self, layer: int, name: str, values) -> None:
        """Overwrite parameter array ``name`` of layer ``layer`` (same size, any shape)."""
        values = np.ascontiguousarray(values, dtype=np.float32).ravel()
        with self._lock:
            self._handle.set_param(int(layer), name, values)

    @property
    def learning_rate(self) -> float:
        """The rate the cfg's schedule gives for the current batch (spec §4.6)."""
        with self._lock:
            return self._handle.current_rate()

    def seed(self, seed: int) -> None:
        """Seed the network's random generator (dropout)."""
        with self._lock:
            self._handle.seed(int(seed))

    def export_onnx(self, path: PathLike, *, opset: int = 17, batch: Optional[int] = 1,
                    decode: bool = True) -> None:
        """Write the network with its current weights as an ONNX model (batch norm folded).
        ``batch=None``: dynamic batch. Detectors give ``detections`` (N, boxes, 5 + classes) with
        ``decode=True``, else one ``yolo_<index>`` output per [yolo] layer; other networks give
        ``output`` (N, outputs). See :mod:`darknetpy.onnx_export`. Needs the ``onnx`` package."""
        from .onnx_export import export_onnx
        export_onnx(self, path, opset=opset, batch=batch, decode=decode)

    # ---- size and memory -------------------------------------------------
    def resize(self, width: int, height: int) -> None:
        """Rebuild every layer for a ``width`` x ``height`` input (darknet's ``resize_network``),
        keeping weights and training state. Raises InputError when a layer's parameters depend
        on the size (a [connected] layer after spatial layers)."""
        with self._lock:
            self._handle.resize(int(width), int(height))
            self._read_shapes()
            self._last_n = 0

    def memory(self) -> dict:
        """Bytes the engine holds for this network: ``weights`` (parameters, their updates and
        prepared copies), ``activations`` (layer outputs and deltas) and ``workspace``."""
        with self._lock:
            return self._handle.memory()

    @property
    def backend(self) -> str:
        """The engine backend running this network, e.g. ``"cpu (avx2)"``."""
        with self._lock:
            return self._handle.backend()

    # ---- lifetime ------------------------------------------------------
    def close(self) -> None:
        """Free the engine's memory now; later calls raise ValueError."""
        with self._lock:
            self._handle.close()

    def __enter__(self) -> "Network":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


MAX_THREADS = 1024


def _check_threads(threads) -> None:
    if threads is None:
        return
    if isinstance(threads, (bool, np.bool_)) or not isinstance(threads, (int, np.integer)) \
            or not 1 <= threads <= MAX_THREADS:
        raise InputError(f"threads must be None (all cores) or an int from 1 to {MAX_THREADS}, not {threads!r}")


def partial(cfg: PathLike, weights: PathLike, out: PathLike, upto: int) -> int:
    """``darknet partial``: copy layers [0, upto) of ``weights`` into ``out`` with
    seen = 0, byte-identical to upstream (spec §2.5). Returns the layers loaded."""
    with Network(cfg, batch=1, fuse=False) as net:
        loaded = net.load_weights(weights, upto)
        net.set_counters(0, 0)
        net.save_weights(out, upto)
    return loaded
