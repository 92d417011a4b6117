"""darknet's ``classifier valid`` family (spec §6.4): the five validation modes, their
running tally and the thread pool that decodes images while the network runs."""
from __future__ import annotations

import collections
import itertools
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional, Union

import numpy as np

from .classifier import check_classifier_cfg, check_network, preprocess
from .data import DataConfig, check_labelled, match_labels, read_data_cfg, read_lines, read_list, truth_index
from .errors import CfgError, InputError
from .image import crop_image, load_image, resize_image, resize_min
from .network import Network, PathLike
from .results import ValidationResult, ValidationStep, c_float, top_k

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["VALID_MODES", "validate_classifier"]

log = logging.getLogger("darknetpy")

VALID_MODES = ("single", "10", "full", "multi", "crop")
MULTI_SCALES = (224, 288, 320, 352, 384)
VALID10_OFFSETS = ((-32, -32), (32, -32), (0, 0), (-32, 32), (32, 32))


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


class _SizedNetworks:
    """One unfused batch-1 network of cfg + weights, resized to each input size it is asked
    for (validfull/validmulti; upstream's resize_network)."""

    def __init__(self, cfg: PathLike, weights: Optional[PathLike], threads: Optional[int]):
        self._net = Network(cfg, weights, batch=1, fuse=False, threads=threads)

    def get(self, width: int, height: int) -> Network:
        if (self._net.width, self._net.height) != (width, height):
            self._net.resize(width, height)
        return self._net

    def close(self) -> None:
        self._net.close()


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
        check_network(probe, vs.classes)
        width = probe.width
    workers = workers or _default_workers()
    start = time.perf_counter()
    unreadable: list[str] = []
    tally = _Tally(vs.classes, vs.k, confusion)
    from tqdm import tqdm  # here: importing tqdm costs every `import darknetpy` 2 MB

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
