"""The engine object: a darknet network built from a .cfg, with .weights I/O."""
from __future__ import annotations

import logging
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Iterable, Optional, TypeVar, Union

import numpy as np

from . import _libdarknet, cuda
from .errors import InputError
from .paths import checked_path, existing_file

PathLike = Union[str, os.PathLike]
log = logging.getLogger("darknetpy")

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
    ``device`` is ``"cpu"`` or a CUDA GPU, ``"cuda"`` / ``"cuda:N"`` (:mod:`darknetpy.cuda`), for
    inference (batch norm always folded) and training; an unusable GPU raises DeviceError.

    An inference network keeps the outputs of its detection heads, its output layer and its
    last layer; any other layer's output shares memory with later ones once the layers that
    read it have run, and :meth:`layer_output` raises InputError for it. ``keep_outputs=True``
    keeps every layer's output, an iterable of layer indices keeps those (also
    :meth:`keep_output`). A training network (``batch=None``) keeps every output.

    ``low_memory`` is deprecated and does nothing (DeprecationWarning when true): every network
    keeps one copy of its weights, Winograd convolutions transforming theirs as they run.

    Calls on one Network are serialised by a lock and release the GIL inside
    the engine; for parallel throughput use one Network per thread. Results are
    new arrays that stay valid after the next call. Use ``close()`` or ``with``
    to free the engine's memory at once.
    """

    def __init__(self, cfg: PathLike, weights: Optional[PathLike] = None, batch: Optional[int] = 1, *,
                 fuse: bool = True, threads: Optional[int] = None, strict: bool = False,
                 max_memory: Optional[int] = None, device: str = "cpu",
                 keep_outputs: Union[bool, Iterable[int]] = False, low_memory: bool = False):
        if batch is not None and (not isinstance(batch, (int, np.integer)) or batch < 1):
            raise ValueError(f"batch must be a positive int or None (the cfg's batch), not {batch!r}")
        _check_threads(threads)
        if low_memory:
            warnings.warn("low_memory is deprecated and does nothing: every network keeps one copy of its weights",
                          DeprecationWarning, stacklevel=2)
        self.cfg_path = existing_file(cfg, "cfg")
        self.weights_path: Optional[str] = None
        self._lock = threading.Lock()
        if max_memory is not None and (not isinstance(max_memory, (int, np.integer)) or max_memory < 1):
            raise InputError(f"max_memory must be a positive number of bytes or None, not {max_memory!r}")
        self.device: str = cuda.parse_device(device)
        if self.device != "cpu":
            cuda.load_libraries()
        self._handle = _libdarknet.NetworkHandle(self.cfg_path, 0 if batch is None else int(batch),
                                                 0 if max_memory is None else int(max_memory), self.device,
                                                 keep_outputs is True)
        if threads is not None:
            self._handle.set_threads(int(threads))
        self._last_n = 0
        self._read_shapes()
        if not isinstance(keep_outputs, bool):
            for index in keep_outputs:
                self.keep_output(index)
        if weights is not None:
            self.load_weights(weights, strict=strict)
        if fuse:  # after loading: the prepared copies replace raw weights, which loading would restore
            self._handle.prepare()  # C keeps the prepared state up to date from here on

    def _read_shapes(self) -> None:
        info = self._handle.info()
        self.width: int = info["width"]
        self.height: int = info["height"]
        self.channels: int = info["channels"]
        self.batch: int = info["batch"]
        self.subdivisions: int = info["subdivisions"]
        self.inputs: int = info["inputs"]
        self.outputs: int = info["outputs"]
        self.truths: int = info["truths"]  # truth values per image train_step takes (raw layout)
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

    def time_layers(self, on: bool = True) -> None:
        """Start timing each layer of the forwards that follow, from zero (``on=False``: stop).
        CPU networks only (UnsupportedError on a device); see :meth:`layer_times`."""
        with self._lock:
            self._handle.time_layers(bool(on))

    def layer_times(self) -> np.ndarray:
        """Each layer's mean wall milliseconds per forward since :meth:`time_layers` started timing
        (a forward is one chunk of :meth:`predict`; zeros before the first)."""
        with self._lock:
            seconds, forwards = self._handle.layer_times()
        return seconds * 1e3 / max(forwards, 1)

    def keep_output(self, index: int) -> None:
        """Keep layer ``index``'s output for :meth:`layer_output` from the next forward on
        (an inference network otherwise reuses its memory; see the class notes)."""
        layer = self.layers[index]  # IndexError for a bad index, as layer_output
        with self._lock:
            self._handle.keep_output(layer.index)

    def layer_output(self, index: int) -> np.ndarray:
        """Layer ``index``'s output of the last forward chunk as a new (N, c, h, w) array
        ((N, outputs, 1, 1) for layers without an image shape). InputError for an output the
        network does not keep (see the class notes)."""
        layer = self.layers[index]
        with self._lock:
            data = self._handle.layer_output(index)
        n = max(self._last_n, 1)
        c, h, w = layer.output_shape
        shape = (n, c, h, w) if c * h * w == layer.outputs else (n, layer.outputs, 1, 1)
        return data[:n * layer.outputs].reshape(shape)

    # ---- training ------------------------------------------------------
    @property
    def is_detector(self) -> bool:
        """Whether the network has a detection head ([yolo]): its truth is boxes."""
        return any("detection" in layer.caps for layer in self.layers)

    def _truth(self, y, n: int, what: str) -> np.ndarray:
        """Truth of n images as darknet's (n, truths) float32 array. A detector also takes a
        list of n (k, 5) arrays (class, x, y, w, h per box, label-file order)."""
        if self.is_detector and isinstance(y, (list, tuple)):
            if len(y) != n:
                raise InputError(f"{what} needs the boxes of {n} images; got a list of {len(y)}")
            return detector_truth(y, self.truths)
        y = np.ascontiguousarray(y, dtype=np.float32)
        if y.shape != (n, self.truths):
            form = "a list of (k, 5) box arrays or " if self.is_detector else ""
            raise InputError(f"{what} needs {n} images and truth as {form}a ({n}, {self.truths}) array; "
                             f"got truth of shape {y.shape}")
        return y

    def train_step(self, x, y) -> float:
        """One darknet iteration (spec §4.1): x float32 (batch*subdivisions, C, H, W), y the
        truth of those images; returns darknet's per-image loss. For a classifier y is
        float32 (N, outputs); for a detector a list with one (k, 5) array per image (class,
        x, y, w, h, normalised, label-file order) or darknet's raw (N, truths) layout. For a
        detector the loss is darknet's: the mean of the [yolo] layers' costs per image.
        Afterwards :meth:`layer_output` and :meth:`layer_delta` hold the last mini-batch's."""
        x = self._as_batch(x)
        need = self.batch * self.subdivisions
        if len(x) != need:
            raise InputError(f"train_step needs {need} images (batch/subdivisions mini-batch x subdivisions); "
                             f"got {x.shape[0]}")
        y = self._truth(y, need, "train_step")
        with self._lock:
            loss = self._handle.train_step(x, y)
            self._last_n = self.batch
        if self.is_detector and log.isEnabledFor(logging.DEBUG):
            for stats in self.detection_stats().values():
                log.debug("%s", stats["line"])
        return loss

    def detection_stats(self) -> dict:
        """Per detection layer (index -> dict), its statistics of the last training pass (the last
        mini-batch), as darknet prints them per head: ``count`` (truth-to-anchor assignments),
        ``avg_iou``, ``avg_class``, ``avg_obj``, ``avg_noobj``, ``recall50``, ``recall75``,
        ``class_loss``, ``iou_loss``, ``total_loss`` (per image), ``total_bbox``,
        ``rewritten_bbox`` and ``line`` (darknet's console line). train_step logs the lines at DEBUG."""
        with self._lock:
            return {layer.index: self._handle.detection_stats(layer.index) for layer in self.layers
                    if "detection" in layer.caps}

    # ---- gradient inspection (tests, debugging) ----------------------------
    def backward(self, x, y, input_delta: bool = False) -> tuple:
        """One training-mode forward and backward of a single mini-batch (``batch`` samples)
        without an update or counter change. Returns ``(loss, delta)``: the mini-batch's
        darknet cost (spec §4.2) and, with ``input_delta=True``, the input's delta as
        (batch, C, H, W), else None. Afterwards :meth:`param_delta` gives each parameter's
        delta of this mini-batch (momentum is discarded). Deltas follow darknet's sign
        convention: they are NEGATIVE gradients."""
        x = self._as_batch(x)
        if len(x) != self.batch:
            raise InputError(f"backward needs one mini-batch: {self.batch} images; got {x.shape[0]}")
        y = self._truth(y, self.batch, "backward")
        with self._lock:
            loss, delta = self._handle.backward(x, y, input_delta)
            self._last_n = self.batch
        return loss, None if delta is None else delta.reshape((self.batch,) + self.input_shape)

    def layer_delta(self, index: int) -> np.ndarray:
        """Layer ``index``'s delta from the last training pass (:meth:`train_step`'s last
        mini-batch, or :meth:`backward`) as a new (batch, c, h, w) array; darknet's sign
        convention (the negative gradient of the loss w.r.t. the layer's output)."""
        layer = self.layers[index]
        with self._lock:
            data = self._handle.layer_delta(index)
        if not len(data):
            raise InputError("layer deltas exist only on a network built for training (batch=None)")
        c, h, w = layer.output_shape
        shape = (self.batch, c, h, w) if c * h * w == layer.outputs else (self.batch, layer.outputs, 1, 1)
        return data.reshape(shape)

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
        """Bytes the engine holds for this network: ``activations`` (layer outputs, deltas, the
        input and truth buffers), ``workspace`` (in inference, what the layers' scratch adds to
        the outputs' memory, which it shares) and ``weights``, the rest (parameters, their
        updates, prepared copies and the layers' own arrays, in training also batch-norm and
        pre-activation buffers: :func:`darknetpy.estimate_training_memory` splits those)."""
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


_Owner = TypeVar("_Owner", bound="NetworkOwner")


class NetworkOwner:
    """``close()`` and the context manager of a class built around one :class:`Network`
    (``self.network``), which it frees."""
    network: Network

    def close(self) -> None:
        self.network.close()

    def __enter__(self: _Owner) -> _Owner:
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


TRUTH_FIELDS = 6  # darknet's truth record per box: x y w h class track_id (spec D5.1)


def detector_truth(boxes, truths: int) -> np.ndarray:
    """darknet's truth layout for a detector (spec D5.1): per image ``truths // 6`` records of
    x, y, w, h, class, track_id (= the box's index), zero padded, from one (k, 5) array per
    image of class, x, y, w, h (a YOLO label file's rows)."""
    out = np.zeros((len(boxes), truths), dtype=np.float32)
    max_boxes = truths // TRUTH_FIELDS
    for i, b in enumerate(boxes):
        b = np.asarray(b, dtype=np.float32)
        if b.size == 0:
            b = b.reshape(0, 5)
        if b.ndim != 2 or b.shape[1] != 5:
            raise InputError(f"image {i}: boxes must be a (k, 5) array of class, x, y, w, h; got shape {b.shape}")
        if len(b) > max_boxes:
            raise InputError(f"image {i} has {len(b)} boxes but the network takes at most {max_boxes} "
                             "(max= of its [yolo] layers)")
        if not np.isfinite(b).all() or (b[:, 1] <= 0).any():
            raise InputError(f"image {i}: every box needs finite values and x > 0 (darknet's truth ends at the "
                             "first box with x == 0); got\n{b}")
        rec = out[i].reshape(max_boxes, TRUTH_FIELDS)[:len(b)]
        rec[:, :4] = b[:, 1:]
        rec[:, 4] = b[:, 0]
        rec[:, 5] = np.arange(len(b))
    return out


def partial(cfg: PathLike, weights: PathLike, out: PathLike, upto: int) -> int:
    """``darknet partial``: copy layers [0, upto) of ``weights`` into ``out`` with
    seen = 0, byte-identical to upstream (spec §2.5). Returns the layers loaded."""
    with Network(cfg, batch=1, fuse=False) as net:
        loaded = net.load_weights(weights, upto)
        net.set_counters(0, 0)
        net.save_weights(out, upto)
    return loaded
