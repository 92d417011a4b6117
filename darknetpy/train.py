"""``darknet classifier train`` (spec §4.8): the training loop, its data loader and
the classification augmentation of spec §5.5.

Loader threads decode (OpenCV) and augment the next iteration's images while the
engine trains on the current ones (the engine releases the GIL). Each image gets
its own random generator drawn from one seeded stream, so a run with ``seed`` is
reproducible whatever the thread timing.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import astuple, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

from . import _libdarknet
from .augment import SkippedImages, read_bgr, unreadable
from .cfgfile import read_cfg
from .data import check_labelled, read_data_cfg, read_lines, read_list, truth_vector
from .errors import CfgError, DarknetError
from .network import Network
from .training import (Backups, Reporter, TrainProgress, TrainResult, cfg_base, saving_last_on_interrupt,
                       smooth_loss)

__all__ = ["train_classifier", "TrainResult", "TrainProgress", "augment_image"]

log = logging.getLogger("darknetpy")
PathLike = Union[str, os.PathLike]


# --------------------------------------------------------------------------- augmentation (spec §5.5)

@dataclass(frozen=True)
class _Augment:
    """The [net] keys of the augmentation, in dn_crop_augment's order."""

    width: int
    height: int
    min_crop: int
    max_crop: int
    angle: float
    aspect: float
    flip: bool
    hue: float
    saturation: float
    exposure: float

    @classmethod
    def from_info(cls, info: dict) -> "_Augment":
        return cls(info["width"], info["height"], info["min_crop"], info["max_crop"], info["angle"],
                   info["aspect"] or 1.0, bool(info["flip"]), info["hue"], info["saturation"] or 1.0,
                   info["exposure"] or 1.0)


def augment_image(bgr: np.ndarray, aug: _Augment, rng: np.random.Generator) -> np.ndarray:
    """darknet's classification augmentation (spec §5.5) of an 8-bit BGR HWC image (as OpenCV
    decodes it): random scale/aspect/rotation/translation crop, flip, HSV jitter, then
    ``resize_image`` to the network size, in one pass of the engine. Returns RGB float32 CHW in
    [0, 1]."""
    out = np.empty((3, aug.height, aug.width), np.float32)
    _libdarknet.augment_classifier(np.ascontiguousarray(bgr, np.uint8), astuple(aug),
                                   rng.random(_libdarknet.AUGMENT_DRAWS), out)
    return out


# --------------------------------------------------------------------------- loader

def _yield_to_the_engine() -> None:
    """A loader thread runs at a lower priority (Linux: per thread), so that it fills the gaps of a
    training step instead of pre-empting one of the engine's threads (the others then wait at the
    next barrier)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # another platform, or not permitted
        pass


class _DecodedImages:
    """Decoded training images kept in memory up to a byte budget (first come, never evicted):
    decoding a small JPEG costs more than augmenting it, and a draw with replacement comes back to
    the same images. Thread-safe."""

    def __init__(self, budget_mb: float):
        self.room = int(budget_mb * 2 ** 20)
        self._images: dict = {}
        self._lock = threading.Lock()

    def read(self, i: int, path: str) -> tuple:
        """(uint8 BGR image, None) or (None, why it cannot be read), as read_bgr."""
        bgr = self._images.get(i)
        if bgr is not None:
            return bgr, None
        bgr, problem = read_bgr(path)
        if bgr is not None:
            with self._lock:
                if bgr.nbytes <= self.room and i not in self._images:
                    self._images[i] = bgr
                    self.room -= bgr.nbytes
        return bgr, problem


class _Loader:
    """Draws paths uniformly with replacement (spec §5.5) and loads them on a thread pool;
    ``request`` starts the next batch, ``collect`` waits for it. Unreadable images are
    logged once, counted and replaced by fresh draws. Two pairs of staging arrays alternate:
    the loader threads fill one while the engine trains on the other."""

    def __init__(self, paths: Sequence[str], open_paths: Sequence[Path], labels: Sequence[str], classes: int,
                 smooth: float, aug: _Augment, threads: int, seed: Optional[int], cache_mb: float):
        self.paths, self.open_paths = paths, [os.fspath(p) for p in open_paths]
        self.labels, self.classes, self.smooth, self.aug = labels, classes, smooth, aug
        self.settings = astuple(aug)  # as dn_crop_augment lists them
        self.rng = np.random.default_rng(seed)
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="darknetpy-loader",
                                       initializer=_yield_to_the_engine)
        self.images = _DecodedImages(cache_mb)
        self.skips = SkippedImages()
        self._truths: dict = {}  # path index -> truth vector (a path's labels never change)
        self._pending: list = []
        self._staging: list = []  # [(x, y)] * 2
        self._turn = 0

    def _truth(self, i: int) -> np.ndarray:
        truth = self._truths.get(i)
        if truth is None:
            truth = self._truths[i] = truth_vector(self.paths[i], self.labels, self.classes, self.smooth)
        return truth

    def _load_into(self, x: np.ndarray, y: np.ndarray, draws: np.ndarray, u: np.ndarray, start: int) -> list:
        """Loads image draws[k] with uniform draws u[k] and its truth into row start + k; returns
        (index, error) per image that could not be loaded."""
        failed = []
        for k, i in enumerate(draws):
            problem = self._load(int(i), u[k], x[start + k])
            if problem is None:
                y[start + k] = self._truth(int(i))
            else:
                failed.append((start + k, int(i), problem))
        return failed

    def _load(self, i: int, u: np.ndarray, out: np.ndarray) -> Optional[str]:
        bgr, problem = self.images.read(i, self.open_paths[i])
        if bgr is None:
            return problem
        try:
            _libdarknet.augment_classifier(bgr, self.settings, u, out)
        except Exception as exc:  # a corrupt file must not stop training
            return str(exc)
        return None

    def request(self, n: int) -> None:
        # the draws in order (reproducible), then one job per thread writing into the staging
        # arrays: a job per image costs more in hand-offs between threads than a small image
        # costs to load
        draws = self.rng.integers(len(self.paths), size=n)
        u = self.rng.random((n, _libdarknet.AUGMENT_DRAWS))
        if not self._staging or len(self._staging[0][0]) != n:
            shape = (n, 3, self.aug.height, self.aug.width)
            self._staging = [(np.empty(shape, np.float32), np.empty((n, self.classes), np.float32)) for _ in "ab"]
        x, y = self._staging[self._turn]
        jobs = min(n, self.threads)
        self._pending = [self.pool.submit(self._load_into, x, y, draws[n * j // jobs:n * (j + 1) // jobs],
                                          u[n * j // jobs:n * (j + 1) // jobs], n * j // jobs)
                         for j in range(jobs)]

    def collect(self) -> tuple:
        """The batch requested last, (x, y): valid until the next request after the one that follows."""
        jobs, self._pending = self._pending, []
        failed = [item for future in jobs for item in future.result()]
        x, y = self._staging[self._turn]
        self._turn ^= 1
        failures = 0
        for row, i, problem in failed:
            while problem is not None:
                self.skips.add(self.paths[i], problem)
                failures += 1
                if failures > max(100, 10 * len(x)):
                    raise unreadable(failures, self.paths[i])
                i = int(self.rng.integers(len(self.paths)))
                problem = self._load(i, self.rng.random(_libdarknet.AUGMENT_DRAWS), x[row])
            y[row] = self._truth(i)
        return x, y

    @property
    def skipped(self) -> int:
        return self.skips.count

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the loop

def _check_classes(net: Network, classes: int) -> None:
    last = net.layers[-1].type
    if last in ("softmax", "cost") and net.outputs != classes:
        raise CfgError(f"Error: num of filters = {net.outputs} in the last conv-layer in cfg-file doesn't match "
                       f"to classes = {classes} in data-file")


# [net] batch-mixing keys the classifier loader does not implement (the detector loader does)
_MIXING = ("mixup", "cutmix", "mosaic", "blur")


def _refuse_mixing(cfg: PathLike) -> None:
    net = read_cfg(cfg)[0]
    for key, value, line in net.options:
        if key in _MIXING and value.strip() not in ("", "0"):
            raise CfgError(f"{os.fspath(cfg)}:{line}: {key}={value} is not supported for classifier training; "
                           "remove it (or set it to 0)")


def train_classifier(data: PathLike, cfg: PathLike, weights: Optional[PathLike] = None, *, clear: bool = False,
                     max_batches: Optional[int] = None, backup_dir: Optional[PathLike] = None,
                     threads: Optional[int] = None, loader_threads: int = 2, allow_ambiguous: bool = False,
                     progress: Optional[bool] = None, darknet_log: bool = False, seed: Optional[int] = None,
                     callbacks: Optional[Iterable[Callable[[TrainProgress], Optional[bool]]]] = None,
                     device: str = "cpu", image_cache_mb: float = 256) -> TrainResult:
    """Train a classifier as ``darknet classifier train data cfg [weights]`` does (spec §4.8).

    Reads the ``.data`` file (``train``, ``labels``, ``classes``, ``backup``) and refuses a train
    list where a path contains zero or several labels (:class:`~darknetpy.data.LabelError`) unless
    ``allow_ambiguous``. Each iteration draws ``batch`` images (uniformly, with replacement),
    augments them as in spec §5.5 on ``loader_threads`` threads while the previous iteration trains,
    and performs one update. Training resumes from the weights' ``seen`` counter (``clear=True``
    restarts at 0) and stops at ``max_batches`` (default: the cfg's; 0 = never). Backups go to
    ``backup_dir`` (default: the .data ``backup``, created if missing) as upstream names them:
    ``<cfg>_<i>.weights`` every 1000 iterations, ``<cfg>_last.weights`` every 100 and
    ``<cfg>_final.weights`` at the end, each written atomically. Ctrl-C saves ``_last`` and re-raises
    ``KeyboardInterrupt``. Unreadable images are logged with their path, counted and replaced.

    ``progress``: a tqdm bar on stderr (None: when stderr is a terminal and ``darknet_log`` is off);
    ``darknet_log``: darknet's start-up and per-iteration lines on stdout. ``seed`` makes sampling,
    augmentation and dropout reproducible. Each callback receives a :class:`TrainProgress` after every
    iteration and may return True to stop early (the ``_final`` weights are still written).
    ``device``: where the network trains, ``"cpu"`` or a GPU (``"cuda"``, ``"cuda:N"``).
    ``image_cache_mb``: decoded images are kept in memory up to this size and not read again
    (0: decode every draw).
    """
    start_time = time.perf_counter()
    dc = read_data_cfg(data)
    labels = read_lines(dc.resolve(dc.labels))[:dc.classes]
    paths = read_list(dc.resolve(dc.train))
    if not paths:
        raise DarknetError(f"the train list {dc.train} has no image paths")
    check_labelled(paths, labels, allow_ambiguous=allow_ambiguous)
    _refuse_mixing(cfg)
    net = Network(cfg, weights, batch=None, threads=threads, device=device)
    try:
        return _train(net, dc, labels, paths, cfg, clear, max_batches, backup_dir, loader_threads, progress,
                      darknet_log, seed, list(callbacks or ()), start_time, image_cache_mb)
    finally:
        net.close()


def _train(net, dc, labels, paths, cfg, clear, max_batches, backup_dir, loader_threads, progress, darknet_log,
           seed, callbacks, start_time, image_cache_mb) -> TrainResult:
    _check_classes(net, dc.classes)
    if clear:
        net.set_counters(0, 0)
    if seed is not None:
        net.seed(seed)
    info = net.info
    per_iteration = net.batch * net.subdivisions
    limit = info["max_batches"] if max_batches is None else int(max_batches)
    base = cfg_base(cfg)
    b = net.seen // per_iteration
    backups = Backups(net, backup_dir if backup_dir is not None else dc.backup, base, b, 1000, 100)
    loader = _Loader(paths, [dc.resolve(p) for p in paths], labels, dc.classes, info["label_smooth_eps"],
                     _Augment.from_info(info), loader_threads, seed, image_cache_mb)
    reporter = Reporter(progress, darknet_log, b, limit)
    reporter.say(f"{base}\n1\nLearning Rate: {info['learning_rate']:g}, Momentum: {info['momentum']:g}, "
                 f"Decay: {info['decay']:g}\n{len(paths)}")
    losses: list = []
    avg = None
    try:
        with saving_last_on_interrupt(backups):
            loader.request(per_iteration)
            while limit == 0 or b < limit:
                t0 = time.perf_counter()
                x, y = loader.collect()
                loader.request(per_iteration)
                reporter.say(f"Loaded: {time.perf_counter() - t0:f} seconds")
                wall, cpu = time.perf_counter(), time.process_time()
                loss = net.train_step(x, y)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                avg = smooth_loss(avg, loss)
                losses.append(loss)
                b = net.seen // per_iteration
                rate = net.learning_rate
                hours = reporter.update_hours(b, wall)
                reporter.say(f"{b}, {net.seen / len(paths):.3f}: {loss:f}, {avg:f} avg, {rate:f} rate, {cpu:f} "
                             f"seconds, {net.seen} images, {hours:f} hours left")
                images_per_s = per_iteration / max(wall, 1e-9)
                reporter.advance(loss=f"{loss:.4f}", avg=f"{avg:.4f}", rate=f"{rate:.3g}",
                                 img_s=f"{images_per_s:.1f}")
                backups.after(b)
                status = TrainProgress(b, loss, avg, rate, net.seen, images_per_s, net)
                if any([cb(status) is True for cb in callbacks]):
                    break
    finally:
        reporter.close()
        loader.close()
    final = backups.save("final")
    return TrainResult(final, len(losses), losses, time.perf_counter() - start_time, loader.skipped)
