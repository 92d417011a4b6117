"""Image classification as darknet's ``classifier predict`` and ``valid*`` (spec §6).

Images reach the network exactly as upstream prepares them: decoded to RGB
float32 (C, H, W) in [0, 1], the shorter side scaled to the network width with
darknet's own bilinear resize, then a centre crop of the network size (spec
§5.3, §5.4).  The best classes are ranked with darknet's ``top_k`` (spec §6.3).

Accepted images (see :func:`as_chw`): a path (decoded with OpenCV, as the CLI
does), a uint8 (H, W, 3) array in BGR order (``cv2.imread``) or RGB with
``channel_order="rgb"``, a uint8 (H, W) grey array, or a float32 (C, H, W) RGB
array in [0, 1].  A list/tuple of these, a uint8 (N, H, W, 3) array or a
float32 (N, C, H, W) array is a batch.
"""
from __future__ import annotations

import collections
import itertools
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import numpy as np
from tqdm import tqdm

from .data import (DataConfig, check_labelled, match_labels, read_data_cfg, read_lines, read_list,
                   truth_index)
from .errors import CfgError, InputError
from .image import center_crop, crop_image, load_image, resize_image, resize_min, to_chw
from .network import Network

__all__ = ["Classification", "Classifier", "ValidationResult", "ValidationStep", "VALID_MODES",
           "as_chw", "check_classifier_cfg", "classify", "preprocess", "top_k", "validate_classifier"]

log = logging.getLogger("darknetpy")

PathLike = Union[str, os.PathLike]
VALID_MODES = ("single", "10", "full", "multi", "crop")
DETECTOR_SECTIONS = ("yolo", "region", "detection", "gaussian_yolo")
MULTI_SCALES = (224, 288, 320, 352, 384)
VALID10_OFFSETS = ((-32, -32), (32, -32), (0, 0), (-32, 32), (32, 32))
_SIZED_NETWORKS = 4   # networks kept per size by validfull/validmulti


# --------------------------------------------------------------------------- formatting and top-k


def c_float(value: float) -> str:
    """C's ``%f`` of *value*, including glibc's ``-nan``/``nan``/``inf`` spellings."""
    v = float(value)
    if v != v:
        return "-nan" if np.signbit(value) else "nan"
    return f"{v:f}"


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """darknet's ``top_k`` (spec §6.3): indices of the k largest values, best first.

    Ties keep the lower index first; a NaN never displaces an entry already
    placed but fills an empty slot (all-NaN gives ``[0, 1, ..., k-1]``).
    *values* is 1-D; k is clamped to its length.  Returns int64 (k,).
    """
    x = np.asarray(values, dtype=np.float32).ravel()
    k = max(0, min(int(k), x.size))
    if not np.isnan(x).any():
        return np.argsort(-x, kind="stable")[:k].astype(np.int64)
    slots: list[int] = []
    for i, v in enumerate(x):
        for pos in range(k):
            if pos >= len(slots) or x[slots[pos]] < v:
                slots.insert(pos, i)
                del slots[k:]
                break
    return np.array(slots, dtype=np.int64)


# --------------------------------------------------------------------------- cfg checks


def _last_section(cfg: PathLike) -> str:
    """Name (lower case) of the last layer section of a cfg, ignoring ``[cost]``."""
    last = ""
    with open(cfg, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = "".join(raw.split())
            if line.startswith("[") and line.endswith("]"):
                name = line[1:-1].lower()
                if name not in ("net", "network", "cost"):
                    last = name
    return last


def _detector_error(cfg: PathLike, section: str, classes: Optional[int] = None) -> CfgError:
    chance = f"1/{classes}" if classes else "1/classes"
    return CfgError(
        f"{os.fspath(cfg)}: the last layer is [{section}], so this is a detector cfg, not a classifier. "
        "classifier predict/valid rank the first `classes` values of the network output; for a detector "
        "those are box coordinates and objectness scores of the first grid cells, not class scores, so "
        f"top-1 would be about {chance} (0.001 with imagenet1k.data) (spec §8.3). Use a classification cfg "
        "(e.g. darknet19.cfg, darknet53.cfg) with its weights, or a detector API for detection.")


def check_classifier_cfg(cfg: PathLike) -> None:
    """Raise ``CfgError`` when *cfg* ends in a detection layer (spec §8.3)."""
    section = _last_section(cfg)
    if section in DETECTOR_SECTIONS:
        raise _detector_error(cfg, section)


def _check_network(net: Network, classes: Optional[int]) -> None:
    """The detector pitfall and darknet's class-count check (spec §4.8, §6.5)."""
    out = net.layers[net.output_layer]
    if out.type in DETECTOR_SECTIONS:
        raise _detector_error(net.cfg_path, out.type, classes)
    last = net.layers[-1]
    if classes is not None and last.type in ("softmax", "cost") and classes != last.outputs:
        raise CfgError(
            f"Error: num of filters = {last.outputs} in the last conv-layer in cfg-file doesn't match to "
            f"classes = {classes} in data-file ({net.cfg_path} gives {last.outputs} outputs; set filters= "
            "of the last [convolutional] layer to the classes of the .data file, or use the matching "
            ".data file)")


# --------------------------------------------------------------------------- images


def as_chw(image: Any, channel_order: str = "bgr") -> np.ndarray:
    """One image as float32 RGB (C, H, W) in [0, 1].

    A path is decoded with OpenCV (BGR, converted to RGB, /255: spec §5.1);
    uint8 (H, W, 3) arrays are in *channel_order* ("bgr" from ``cv2.imread``
    or "rgb"), uint8 (H, W) arrays are grey; float32 (C, H, W) arrays are taken
    as RGB in [0, 1] unchanged.  Raises ``TypeError`` for other types and
    dtypes, ``InputError`` for a float32 array that is not (3, H, W).
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    a = np.asarray(image) if isinstance(image, np.ndarray) else None
    if a is not None and a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        return to_chw(a, channel_order)
    if a is not None and a.dtype == np.float32 and a.ndim == 3:
        if a.shape[0] != 3:
            raise InputError(f"a float32 image must be RGB (3, H, W), got shape {a.shape}"
                             + ("; for (H, W, 3) use image.transpose(2, 0, 1)" if a.shape[2] == 3 else ""))
        return np.ascontiguousarray(a)
    what = f"{a.dtype} array of shape {a.shape}" if a is not None else type(image).__name__
    raise TypeError(f"cannot classify a {what}: pass a path, a uint8 (H, W, 3) BGR image (cv2.imread; "
                    "channel_order='rgb' for RGB), a uint8 (H, W) grey image, a float32 (C, H, W) RGB image "
                    "in [0, 1], or a list of these")


def preprocess(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """darknet's predict/valid pipeline (spec §5.4): ``resize_min(width)`` then a
    centre crop of width x height.  *image* is float32 RGB (C, H, W); returns a
    new or the same array of shape (C, height, width)."""
    return center_crop(resize_min(image, width), width, height)


def _prepare(image: Any, net: Network, channel_order: str) -> np.ndarray:
    """One input, ready for *net*: float32 (C, H, W) of the network size pass through."""
    chw = as_chw(image, channel_order)
    if chw.shape == net.input_shape and not isinstance(image, (str, os.PathLike)) \
            and np.asarray(image).dtype == np.float32:
        return chw
    return preprocess(chw, net.width, net.height)


def _as_items(images: Any) -> tuple[list, bool]:
    """(list of single images, whether *images* was a batch)."""
    if isinstance(images, (list, tuple)):
        return list(images), True
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images), True
    return [images], False


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Classification:
    """The top-k classes of one image, best first (darknet's ``top_k`` order).

    ``indices`` int64 (k,), ``probs`` float32 (k,) the network outputs there,
    ``names`` the k class names, ``output`` float32 (outputs,) the whole output
    vector, ``time_ms`` the forward time.  Iterating yields ``(name, prob)``;
    ``str()`` gives darknet's ``name: prob`` lines.
    """

    indices: np.ndarray
    probs: np.ndarray
    names: tuple[str, ...]
    output: np.ndarray
    time_ms: float
    path: Optional[str] = None

    def pairs(self) -> list[tuple[str, float]]:
        """``[(name, prob), ...]`` best first."""
        return [(n, float(p)) for n, p in zip(self.names, self.probs)]

    @property
    def top1(self) -> tuple[str, float]:
        return self.names[0], float(self.probs[0])

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return iter(self.pairs())

    def __getitem__(self, i: int) -> tuple[str, float]:
        return self.pairs()[i]

    def to_dict(self) -> dict:
        return {"path": self.path, "time_ms": self.time_ms,
                "top": [{"index": int(i), "name": n, "prob": float(p)}
                        for i, n, p in zip(self.indices, self.names, self.probs)]}

    def __str__(self) -> str:
        return "\n".join(f"{n}: {c_float(p)}" for n, p in zip(self.names, self.probs))

    def __repr__(self) -> str:
        name, prob = self.top1 if self.names else ("-", float("nan"))
        return f"Classification(top1={name!r} {prob:.4f}, k={len(self)})"


def _names_for(indices: np.ndarray, names: Optional[Sequence[str]]) -> tuple[str, ...]:
    """Class names of *indices*; the index as text where no name exists."""
    if names is None:
        return tuple(str(i) for i in indices)
    return tuple(names[i] if i < len(names) else str(i) for i in indices)


def _classify_inputs(net: Network, batch: list[np.ndarray], top: int, names: Optional[Sequence[str]],
                     paths: Sequence[Optional[str]]) -> list[Classification]:
    """Forward prepared (C, H, W) inputs one by one; rank all outputs (spec §6.5)."""
    results = []
    for x, path in zip(batch, paths):
        start = time.perf_counter()
        output = net.predict(x)[0]
        ms = (time.perf_counter() - start) * 1000.0
        idx = top_k(output, top)
        results.append(Classification(idx, output[idx], _names_for(idx, names), output, ms, path))
    return results


def _read_names(names: Union[None, PathLike, Sequence[str]]) -> Optional[list[str]]:
    if names is None:
        return None
    if isinstance(names, (str, os.PathLike)):
        return read_lines(names)
    return [str(n) for n in names]


# --------------------------------------------------------------------------- Classifier


class Classifier:
    """A darknet classifier ready for prediction: ``classifier predict`` as an object.

    Builds the network with batch 1 and batch norm fused (spec §5.4).  *data*
    is a ``.data`` file (or a :class:`~darknetpy.data.DataConfig`) giving
    ``classes``, ``top`` and the class names (``names``, else ``labels``);
    *names* (a list or a file with one name per line) overrides those.
    Raises ``CfgError`` for a detector cfg (spec §8.3) and when the classes of
    *data* differ from the outputs of a softmax/cost head (spec §6.5).
    """

    def __init__(self, cfg: PathLike, weights: Optional[PathLike], *,
                 data: Union[None, PathLike, DataConfig] = None,
                 names: Union[None, PathLike, Sequence[str]] = None, threads: Optional[int] = None):
        check_classifier_cfg(cfg)
        self.data = read_data_cfg(data) if isinstance(data, (str, os.PathLike)) else data
        self.network = Network(cfg, weights, batch=1, fuse=True, threads=threads)
        try:
            _check_network(self.network, None if self.data is None else self.data.classes)
            self.classes: int = self.network.outputs if self.data is None else self.data.classes
            if names is None and self.data is not None:
                names = self.data.resolve(self.data.names_or_labels)
            self.names: Optional[list[str]] = _read_names(names)
        except BaseException:
            self.network.close()
            raise
        if self.names is not None and len(self.names) < self.classes:
            log.warning("%d class names for %d classes: the others print as their index",
                        len(self.names), self.classes)

    @property
    def top(self) -> int:
        """darknet's default k: the .data ``top``, else 1, clamped to ``classes``."""
        t = self.data.top if self.data is not None and self.data.top else 1
        return min(t, self.classes)

    @property
    def width(self) -> int:
        return self.network.width

    @property
    def height(self) -> int:
        return self.network.height

    def preprocess(self, image: Any, channel_order: str = "bgr") -> np.ndarray:
        """One image -> float32 RGB (C, height, width), as the network sees it."""
        return _prepare(image, self.network, channel_order)

    def predict(self, images: Any, top: Optional[int] = 5, *, channel_order: str = "bgr"
                ) -> Union[Classification, list[Classification]]:
        """Classify one image (-> :class:`Classification`) or a batch (-> a list).

        *top* = k (None: :attr:`top`), clamped to ``classes``; the ranking
        covers all network outputs, as upstream's predict does.
        """
        items, is_batch = _as_items(images)
        k = self.top if top is None else min(int(top), self.classes)
        prepared = [self.preprocess(im, channel_order) for im in items]
        paths = [os.fspath(im) if isinstance(im, (str, os.PathLike)) else None for im in items]
        results = _classify_inputs(self.network, prepared, k, self.names, paths)
        return results if is_batch else results[0]

    __call__ = predict

    def close(self) -> None:
        self.network.close()

    def __enter__(self) -> "Classifier":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<darknetpy.Classifier {self.network.cfg_path!r} classes={self.classes} "
                f"input={self.width}x{self.height}>")


def classify(model: Union[Network, Classifier], image: Any, top: int = 5,
             names: Optional[Sequence[str]] = None, channel_order: str = "bgr"
             ) -> Union[list[tuple[str, float]], list[list[tuple[str, float]]]]:
    """Top-*top* ``(name, prob)`` pairs of an image, or a list of them for a batch.

    *model* is a :class:`Classifier` or a :class:`~darknetpy.Network` (built
    with ``fuse=True`` to match darknet's predict).  *names* default to the
    classifier's names, else the class index as text.  Preprocessing is
    darknet's (module docstring); *channel_order* applies to uint8 arrays.
    """
    if isinstance(model, Classifier):
        net, classes = model.network, model.classes
        names = model.names if names is None else names
    else:
        _check_network(model, None)
        net, classes = model, model.outputs
    items, is_batch = _as_items(image)
    paths = [os.fspath(im) if isinstance(im, (str, os.PathLike)) else None for im in items]
    results = _classify_inputs(net, [_prepare(im, net, channel_order) for im in items],
                               min(int(top), classes), names, paths)
    return [r.pairs() for r in results] if is_batch else results[0].pairs()


# --------------------------------------------------------------------------- validation results


@dataclass(frozen=True)
class ValidationStep:
    """Progress of a validation after one image (or one chunk for ``crop``).

    ``top1``/``topk`` are the running accuracies; ``text`` is darknet's console
    line for this step (without line ends).
    """

    index: int
    top1: float
    topk: float
    k: int
    text: str


@dataclass(frozen=True)
class ValidationResult:
    """Accuracy of a classifier on a ``valid`` list (spec §6.4).

    ``top1``/``topk`` over ``count`` images (paths without a label count as
    wrong, as upstream); ``per_class`` float64 (classes,) top-1 accuracy per
    true class (NaN where a class has no image), ``class_counts`` int64
    (classes,); ``confusion`` int64 (classes, classes) rows = truth, columns =
    top-1 prediction (labelled images only) when requested, else None.
    ``str()`` is darknet's final console line.
    """

    top1: float
    topk: float
    k: int
    count: int
    mode: str
    per_class: np.ndarray
    class_counts: np.ndarray
    names: tuple[str, ...]
    unlabelled: int = 0
    unreadable: tuple[str, ...] = ()
    confusion: Optional[np.ndarray] = None
    elapsed_s: float = 0.0

    @property
    def n(self) -> int:
        """Number of images validated (= ``count``)."""
        return self.count

    def to_dict(self) -> dict:
        return {"top1": self.top1, f"top{self.k}": self.topk, "k": self.k, "count": self.count,
                "mode": self.mode, "unlabelled": self.unlabelled, "unreadable": list(self.unreadable),
                "per_class": {n: (None if np.isnan(a) else float(a))
                              for n, a in zip(self.names, self.per_class)}}

    def __str__(self) -> str:
        return f"{self.count - 1}: top 1: {c_float(self.top1)}, top {self.k}: {c_float(self.topk)}"

    def __repr__(self) -> str:
        return f"ValidationResult(top1={self.top1:.6f}, top{self.k}={self.topk:.6f}, n={self.count})"


@dataclass
class _Tally:
    """Running counts of a validation."""

    classes: int
    k: int
    confusion: bool
    top1: int = 0
    topk: int = 0
    seen: int = 0
    unlabelled: int = 0
    correct: np.ndarray = field(init=False)
    counts: np.ndarray = field(init=False)
    matrix: Optional[np.ndarray] = field(init=False)

    def __post_init__(self) -> None:
        self.correct = np.zeros(self.classes, dtype=np.int64)
        self.counts = np.zeros(self.classes, dtype=np.int64)
        self.matrix = np.zeros((self.classes, self.classes), dtype=np.int64) if self.confusion else None

    def add(self, truth: int, idx: np.ndarray) -> None:
        self.seen += 1
        if truth < 0:
            self.unlabelled += 1
            return
        hit = bool(len(idx)) and int(idx[0]) == truth
        self.top1 += hit
        self.topk += truth in idx.tolist()
        self.counts[truth] += 1
        self.correct[truth] += hit
        if self.matrix is not None and len(idx):
            self.matrix[truth, idx[0]] += 1

    def line(self, index: int) -> str:
        return (f"{index}: top 1: {c_float(self.top1 / self.seen)}, "
                f"top {self.k}: {c_float(self.topk / self.seen)}")

    def result(self, mode: str, names: Sequence[str], unreadable: list[str], elapsed: float,
               top1: Optional[float] = None, topk: Optional[float] = None) -> ValidationResult:
        with np.errstate(invalid="ignore", divide="ignore"):
            per_class = np.where(self.counts > 0, self.correct / np.maximum(self.counts, 1), np.nan)
        seen = max(self.seen, 1)
        return ValidationResult(self.top1 / seen if top1 is None else top1,
                                self.topk / seen if topk is None else topk, self.k, self.seen, mode,
                                per_class, self.counts.copy(), tuple(names), self.unlabelled,
                                tuple(unreadable), self.matrix, elapsed)


# --------------------------------------------------------------------------- validation


def _load(path: str, unreadable: list[str]) -> np.ndarray:
    """Decode *path*; an unreadable file becomes a black 10x10 image, as upstream (spec §5.1)."""
    try:
        return load_image(path)
    except (OSError, InputError) as exc:
        log.warning("Cannot load image %s (%s): using a black 10x10 image, as darknet does", path, exc)
        unreadable.append(path)
        return np.zeros((3, 10, 10), dtype=np.float32)


def _prefetch(fn: Callable[[str], Any], items: Sequence[str], workers: int) -> Iterator[Any]:
    """``map(fn, items)`` computed by *workers* threads at most 2*workers ahead, in order."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="darknetpy-load") as pool:
        it = iter(items)
        pending: collections.deque[Future] = collections.deque(
            pool.submit(fn, item) for item in itertools.islice(it, 2 * workers))
        try:
            while pending:
                ready = pending.popleft().result()
                nxt = next(it, None)
                if nxt is not None:
                    pending.append(pool.submit(fn, nxt))
                yield ready
        finally:
            for f in pending:
                f.cancel()


def _resized_cfg(cfg_text: str, width: int, height: int) -> str:
    """*cfg_text* with the [net] width/height replaced (the first section only)."""
    out, in_net, done = [], False, False
    for line in cfg_text.splitlines():
        key = "".join(line.split()).split("=", 1)[0]
        if key.startswith("["):
            in_net = not done and key.lower() in ("[net]", "[network]")
            out.append(line)
            if in_net:
                out += [f"width={width}", f"height={height}"]
                done = True
            continue
        if in_net and key in ("width", "height"):
            continue
        out.append(line)
    return "\n".join(out) + "\n"


class _SizedNetworks:
    """Unfused batch-1 networks of one cfg + weights at any input size (validfull/validmulti).

    libdarknet cannot resize a built network, so each size is rebuilt from the
    cfg with width/height replaced and the same weights (identical records for
    convolutional networks); the last few sizes are kept.
    """

    def __init__(self, cfg: PathLike, weights: Optional[PathLike], threads: Optional[int]):
        self._text = Path(cfg).read_text(encoding="utf-8", errors="surrogateescape")
        self._weights = weights
        self._threads = threads
        self._dir = tempfile.TemporaryDirectory(prefix="darknetpy-sized-")
        self._nets: collections.OrderedDict[tuple[int, int], Network] = collections.OrderedDict()

    def get(self, width: int, height: int) -> Network:
        key = (width, height)
        if key in self._nets:
            self._nets.move_to_end(key)
            return self._nets[key]
        path = Path(self._dir.name) / f"net_{width}x{height}.cfg"
        path.write_text(_resized_cfg(self._text, width, height), encoding="utf-8", errors="surrogateescape")
        net = Network(path, self._weights, batch=1, fuse=False, threads=self._threads)
        self._nets[key] = net
        if len(self._nets) > _SIZED_NETWORKS:
            self._nets.popitem(last=False)[1].close()
        return net

    def close(self) -> None:
        for net in self._nets.values():
            net.close()
        self._dir.cleanup()


def _flip(im: np.ndarray) -> np.ndarray:
    """Mirror a (C, H, W) image left-right (darknet's ``flip_image``)."""
    return np.ascontiguousarray(im[:, :, ::-1])


def _sum_outputs(net: Network, inputs: Iterable[np.ndarray]) -> np.ndarray:
    """Sum of the output vectors of *inputs*, accumulated in order in float32."""
    total: Optional[np.ndarray] = None
    for x in inputs:
        out = net.predict(x)[0]
        total = out.copy() if total is None else total + out
    return total


def _ten_crops(im: np.ndarray, width: int, height: int) -> list[np.ndarray]:
    """valid10's inputs (spec §6.4): 5 crops of the (w+32)x(h+32) resize and of its mirror."""
    big = resize_image(im, width + 32, height + 32)
    return [crop_image(src, dx, dy, width, height)
            for src in (big, _flip(big)) for dx, dy in VALID10_OFFSETS]


def _multi_scales(im: np.ndarray) -> list[np.ndarray]:
    """validmulti's inputs (spec §6.4): each scale's resize_min image and its mirror.

    Upstream mirrors in place; when ``resize_min`` returns the image itself
    (already that size) the following scales therefore start from the mirror.
    """
    inputs = []
    for s in MULTI_SCALES:
        _, h, w = im.shape
        same = w == s if w < h else h == s
        r = resize_min(im, s)
        mirrored = _flip(r)
        inputs += [r, mirrored]
        if same:
            im = mirrored
    return inputs


def _mode_pipeline(mode: str, cfg: PathLike, weights: Optional[PathLike], threads: Optional[int],
                   width: int, unreadable: list[str]) -> tuple[Callable[[str], Any], Callable[[Any], np.ndarray],
                                                   Callable[[], None]]:
    """(load(path) on worker threads, forward(loaded) -> output vector, close) for *mode*."""
    if mode in ("single", "10"):
        net = Network(cfg, weights, batch=1, fuse=mode == "single", threads=threads)
        if mode == "single":
            def load(path: str) -> np.ndarray:
                return preprocess(_load(path, unreadable), net.width, net.height)

            def forward(x: np.ndarray) -> np.ndarray:
                return net.predict(x)[0]
        else:
            def load(path: str) -> list[np.ndarray]:
                return _ten_crops(_load(path, unreadable), net.width, net.height)

            def forward(crops: list[np.ndarray]) -> np.ndarray:
                return _sum_outputs(net, crops)
        return load, forward, net.close
    sized = _SizedNetworks(cfg, weights, threads)

    def by_size(inputs: list[np.ndarray]) -> np.ndarray:
        total = None
        for x in inputs:
            out = sized.get(x.shape[2], x.shape[1]).predict(x)[0]
            total = out.copy() if total is None else total + out
        return total

    if mode == "full":
        return (lambda path: [resize_min(_load(path, unreadable), width)]), by_size, sized.close
    return (lambda path: _multi_scales(_load(path, unreadable))), by_size, sized.close


@dataclass(frozen=True)
class _ValidSet:
    """What a validation reads from the .data file."""

    paths: list[str]
    labels: list[str]
    names: list[str]
    classes: int
    k: int


def _read_valid_set(data: Union[PathLike, DataConfig], top: Optional[int], allow_ambiguous: bool
                    ) -> _ValidSet:
    dc = read_data_cfg(data) if isinstance(data, (str, os.PathLike)) else data
    labels = read_lines(dc.resolve(dc.labels))[:dc.classes]
    if len(labels) < dc.classes:
        raise CfgError(f"{dc.labels} has {len(labels)} lines but {dc.path} says classes={dc.classes}")
    paths = read_list(dc.resolve(dc.valid))
    if not paths:
        raise CfgError(f"the valid list {dc.valid} of {dc.path} holds no image paths")
    check_labelled(paths, labels, allow_ambiguous=allow_ambiguous)
    names_file = dc.resolve(dc.names_or_labels)
    names = read_lines(names_file) if dc.names is not None else list(labels)
    k = min(top or dc.top or 1, dc.classes)
    return _ValidSet(paths, labels, names[:dc.classes], dc.classes, k)


def _default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def validate_classifier(data: Union[PathLike, DataConfig], cfg: PathLike, weights: Optional[PathLike], *,
                        mode: str = "single", top: Optional[int] = None, allow_ambiguous: bool = False,
                        progress: Optional[bool] = None, workers: Optional[int] = None,
                        confusion: bool = False, threads: Optional[int] = None,
                        on_step: Optional[Callable[[ValidationStep], None]] = None) -> ValidationResult:
    """darknet's ``classifier valid`` family on the ``valid`` list of *data* (spec §6.4).

    *mode*: ``"single"`` (``valid``: resize_min + centre crop, BN fused),
    ``"10"`` (``valid10``), ``"full"`` (``validfull``), ``"multi"``
    (``validmulti``) or ``"crop"`` (``validcrop``); the last four run unfused,
    as upstream.  The truth of an image is the first of the first ``classes``
    labels found in its path; *top* = k (default: the .data ``top``, else 1).
    Paths matching no label or several raise ``LabelError`` listing examples,
    unless *allow_ambiguous* (upstream's behaviour: truth -1 = always wrong,
    resp. the first match).  Images are decoded and preprocessed by *workers*
    threads while the network runs.  *progress*: a tqdm bar on stderr (None:
    only on a TTY).  *on_step* receives a :class:`ValidationStep` per image
    (per chunk for ``crop``).  An unreadable image is replaced by a black one
    with a warning, as upstream, and listed in the result.
    """
    if mode not in VALID_MODES:
        raise ValueError(f"mode must be one of {', '.join(VALID_MODES)}, not {mode!r}")
    check_classifier_cfg(cfg)
    vs = _read_valid_set(data, top, allow_ambiguous)
    with Network(cfg, None, batch=1, fuse=False, threads=threads) as probe:
        _check_network(probe, vs.classes)
        width = probe.width
    workers = workers or _default_workers()
    start = time.perf_counter()
    unreadable: list[str] = []
    tally = _Tally(vs.classes, vs.k, confusion)
    bar = tqdm(total=len(vs.paths), desc=f"valid {mode}", unit="img", file=sys.stderr,
               disable=None if progress is None else not progress)
    try:
        if mode == "crop":
            top1, topk = _validate_crop(vs, cfg, weights, threads, workers, tally, unreadable, bar, on_step)
            return tally.result(mode, vs.names, unreadable, time.perf_counter() - start, top1, topk)
        load, forward, close = _mode_pipeline(mode, cfg, weights, threads, width, unreadable)
        try:
            for i, (path, loaded) in enumerate(zip(vs.paths, _prefetch(load, vs.paths, workers))):
                out = forward(loaded)
                truth = truth_index(path, vs.labels)
                tally.add(truth, top_k(out[:vs.classes], vs.k))
                bar.update()
                if on_step is not None:
                    on_step(ValidationStep(i, tally.top1 / tally.seen, tally.topk / tally.seen, vs.k,
                                           tally.line(i)))
        finally:
            close()
    finally:
        bar.close()
    result = tally.result(mode, vs.names, unreadable, time.perf_counter() - start)
    log.info("%s", result)
    return result


def _validate_crop(vs: _ValidSet, cfg: PathLike, weights: Optional[PathLike], threads: Optional[int],
                   workers: int, tally: _Tally, unreadable: list[str], bar: tqdm,
                   on_step: Optional[Callable[[ValidationStep], None]]) -> tuple[float, float]:
    """validcrop (spec §6.4): chunks of m // splits images, splits = m // 1000 (at least 1:
    upstream divides by zero below 1000 images), plain resize to the network size,
    any matching label counts; accuracies are means of the chunk accuracies.
    Returns (top1, topk)."""
    m = len(vs.paths)
    splits = max(1, m // 1000)
    size = m // splits
    sums = [0.0, 0.0]
    with Network(cfg, weights, batch=1, fuse=False, threads=threads) as net:
        def load(path: str) -> np.ndarray:
            return resize_image(_load(path, unreadable), net.width, net.height)

        for c in range(splits):
            chunk = vs.paths[c * size:(c + 1) * size]
            t0 = time.perf_counter()
            images = list(_prefetch(load, chunk, workers))
            loaded_s = time.perf_counter() - t0
            hits = [0, 0]
            t1 = time.perf_counter()
            for path, x in zip(chunk, images):
                idx = top_k(net.predict(x)[0][:vs.classes], vs.k)
                truths = match_labels(path, vs.labels)
                tally.add(truths[0] if truths else -1, idx)
                hits[0] += bool(truths) and int(idx[0]) in truths
                hits[1] += any(int(i) in truths for i in idx)
                bar.update()
            sums[0] += hits[0] / len(chunk)
            sums[1] += hits[1] / len(chunk)
            if on_step is not None:
                top1, topk = sums[0] / (c + 1), sums[1] / (c + 1)
                text = (f"Loaded: {len(chunk)} images in {loaded_s:f} seconds\n"
                        f"{c}: top 1: {c_float(top1)}, top {vs.k}: {c_float(topk)}, "
                        f"{time.perf_counter() - t1:f} seconds, {len(chunk)} images")
                on_step(ValidationStep(c, top1, topk, vs.k, text))
    return sums[0] / splits, sums[1] / splits
