"""``darknet classifier train`` (spec §4.8): the training loop, its data loader and
the classification augmentation of spec §5.5.

Loader threads decode (OpenCV) and augment the next iteration's images while the
engine trains on the current ones (the engine releases the GIL). Each image gets
its own random generator drawn from one seeded stream, so a run with ``seed`` is
reproducible whatever the thread timing.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, Sequence, Union

import numpy as np

from . import _libdarknet
from .data import check_labelled, read_data_cfg, read_lines, read_list, truth_vector
from .errors import CfgError, DarknetError
from .network import Network

__all__ = ["train_classifier", "TrainResult", "TrainProgress", "augment_image"]

log = logging.getLogger("darknetpy")
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class TrainResult:
    """What :func:`train_classifier` did: the ``_final`` weights, the iterations run in this
    call, the per-iteration losses, wall time and the number of unreadable images skipped."""
    final_weights: Path
    iterations: int
    loss_history: list
    elapsed_s: float
    skipped_images: int


@dataclass(frozen=True)
class TrainProgress:
    """Passed to each callback after every iteration."""
    iteration: int          # darknet's current batch
    loss: float
    avg_loss: float
    rate: float
    seen: int
    images_per_s: float
    network: Network


# --------------------------------------------------------------------------- augmentation (spec §5.5)

@dataclass(frozen=True)
class _Augment:
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


def _rand_scale(rng: np.random.Generator, s: float) -> float:
    lo, hi = (1.0, s) if s >= 1 else (s, 1.0)
    v = rng.uniform(lo, hi)
    return v if rng.random() < 0.5 else 1.0 / v


def _distort(rgb: np.ndarray, dhue: float, dsat: float, dexp: float) -> np.ndarray:
    """HSV jitter of an RGB float32 HWC image: hue shifted and wrapped once, saturation and
    value scaled, back to RGB clamped to [0, 1] (darknet's HSV formulas are OpenCV's)."""
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # H in degrees
    h = hsv[..., 0] / 360 + dhue
    hsv[..., 0] = np.where(h > 1, h - 1, np.where(h < 0, h + 1, h)) * 360
    hsv[..., 1] *= dsat
    hsv[..., 2] *= dexp
    return np.clip(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB), 0, 1)


def augment_image(rgb: np.ndarray, aug: _Augment, rng: np.random.Generator) -> np.ndarray:
    """darknet's classification augmentation (spec §5.5) of an RGB float32 HWC image in [0, 1]:
    random scale/aspect/rotation/translation crop, flip, HSV jitter, then ``resize_image`` to the
    network size. Returns float32 CHW.

    The crop maps output pixel (x, y) to the source point ``R(theta) . (a (x - S/2 + dx) / sigma,
    (y - S/2 + dy) / sigma) + (W/2, H/2)``, sampled bilinearly on pixel corners with zeros
    outside: an affine map, done by OpenCV's warpAffine (which quantises the sub-pixel
    position to 1/32 pixel)."""
    import cv2

    h, w = rgb.shape[:2]
    size = max(aug.width, aug.height)
    a = _rand_scale(rng, aug.aspect)
    lo, hi = sorted((aug.min_crop, aug.max_crop))
    r = int(rng.integers(lo, hi + 1))
    sigma = r / max(int(min(h, w * a)), 1)
    theta = math.radians(rng.uniform(-aug.angle, aug.angle))
    dx_max, dy_max = max(0.0, (w * sigma / a - size) / 2), max(0.0, (h * sigma - size) / 2)
    dx, dy = rng.uniform(-dx_max, dx_max), rng.uniform(-dy_max, dy_max)
    c, s = math.cos(theta), math.sin(theta)
    sx, sy = a / sigma, 1 / sigma
    ox, oy = dx - size / 2, dy - size / 2
    m = np.array([[c * sx, -s * sy, c * sx * ox - s * sy * oy + w / 2],
                  [s * sx, c * sy, s * sx * ox + c * sy * oy + h / 2]])
    out = cv2.warpAffine(rgb, m, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    if aug.flip and rng.random() < 0.5:
        out = out[:, ::-1]
    dhue = rng.uniform(-aug.hue, aug.hue)
    dsat, dexp = _rand_scale(rng, aug.saturation), _rand_scale(rng, aug.exposure)
    if (dhue, dsat, dexp) != (0, 1, 1):
        out = _distort(np.ascontiguousarray(out), dhue, dsat, dexp)
    chw = np.ascontiguousarray(out.transpose(2, 0, 1))
    if (size, size) != (aug.height, aug.width):
        chw = _libdarknet.resize_image(chw, aug.width, aug.height)
    return chw


# --------------------------------------------------------------------------- loader

def _yield_to_the_engine() -> None:
    """A loader thread runs at a lower priority (Linux: per thread), so that it fills the gaps of a
    training step instead of pre-empting one of the engine's threads (the others then wait at the
    next barrier)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):  # another platform, or not permitted
        pass


class _Loader:
    """Draws paths uniformly with replacement (spec §5.5) and loads them on a thread pool;
    ``request`` starts the next batch, ``collect`` waits for it. Unreadable images are
    logged once, counted and replaced by fresh draws."""

    def __init__(self, paths: Sequence[str], open_paths: Sequence[Path], labels: Sequence[str], classes: int,
                 smooth: float, aug: _Augment, threads: int, seed: Optional[int]):
        self.paths, self.open_paths = paths, open_paths
        self.labels, self.classes, self.smooth, self.aug = labels, classes, smooth, aug
        self.rng = np.random.default_rng(seed)
        self.threads = max(1, threads)
        self.pool = ThreadPoolExecutor(self.threads, thread_name_prefix="darknetpy-loader",
                                       initializer=_yield_to_the_engine)
        self.skipped = 0
        self._reported: set = set()
        self._pending: list = []
        self._x = self._y = None  # staging arrays the loader threads fill

    def _job(self):
        i = int(self.rng.integers(len(self.paths)))
        return self.pool.submit(self._load, i, np.random.default_rng(int(self.rng.integers(2 ** 63))))

    def _load(self, i: int, rng: np.random.Generator):
        import cv2

        try:
            bgr = cv2.imread(os.fspath(self.open_paths[i]), cv2.IMREAD_COLOR)
            if bgr is None:
                return i, None
            rgb = bgr[:, :, ::-1].astype(np.float32) * np.float32(1 / 255)
            return i, augment_image(rgb, self.aug, rng)
        except Exception as exc:  # a corrupt file must not stop training
            return i, exc

    def _load_into(self, draws: list, start: int) -> list:
        """Loads draws[k] and its truth into row start + k of the staging arrays; returns
        (index, stored, error) per draw."""
        out = []
        for k, (i, rng) in enumerate(draws):
            i, image = self._load(i, rng)
            stored = isinstance(image, np.ndarray)
            if stored:
                self._x[start + k] = image
                self._y[start + k] = truth_vector(self.paths[i], self.labels, self.classes, self.smooth)
            out.append((i, stored, None if stored else image))
        return out

    def request(self, n: int) -> None:
        # the draws in order (reproducible), then one job per thread writing into the staging
        # arrays: a job per image costs more in hand-offs between threads than a small image
        # costs to load, and the training thread only copies the batch
        draws = [(int(self.rng.integers(len(self.paths))), np.random.default_rng(int(self.rng.integers(2 ** 63))))
                 for _ in range(n)]
        if self._x is None or len(self._x) != n:
            self._x = np.empty((n, 3, self.aug.height, self.aug.width), np.float32)
            self._y = np.empty((n, self.classes), np.float32)
        jobs = min(n, self.threads)
        self._pending = [self.pool.submit(self._load_into, draws[n * j // jobs:n * (j + 1) // jobs], n * j // jobs)
                         for j in range(jobs)]

    def collect(self, x: np.ndarray, y: np.ndarray) -> None:
        jobs, self._pending = self._pending, []
        loaded = [item for future in jobs for item in future.result()]
        x[...], y[...] = self._x, self._y
        failures = 0
        for k, (i, stored, image) in enumerate(loaded):
            if stored:
                continue
            while not isinstance(image, np.ndarray):
                self._skip(i, image)
                failures += 1
                if failures > max(100, 10 * len(loaded)):
                    raise DarknetError(f"{failures} images in a row could not be loaded (last: {self.paths[i]}); "
                                       "check the train list")
                i, image = self._job().result()
            x[k] = image
            y[k] = truth_vector(self.paths[i], self.labels, self.classes, self.smooth)

    def _skip(self, i: int, error) -> None:
        self.skipped += 1
        if i not in self._reported:
            self._reported.add(i)
            reason = f": {error}" if error is not None else ""
            log.warning("Cannot load image %s%s (skipped)", self.paths[i], reason)

    def close(self) -> None:
        for future in self._pending:
            future.cancel()
        self.pool.shutdown(wait=True, cancel_futures=True)


# --------------------------------------------------------------------------- the loop

def _cfg_base(cfg: PathLike) -> str:
    return Path(cfg).name.split(".")[0]


def _check_classes(net: Network, classes: int) -> None:
    last = net.layers[-1].type
    if last in ("softmax", "cost") and net.outputs != classes:
        raise CfgError(f"Error: num of filters = {net.outputs} in the last conv-layer in cfg-file doesn't match "
                       f"to classes = {classes} in data-file")


class _Reporter:
    """tqdm bar on stderr, or darknet's own lines on stdout (spec §4.8)."""

    def __init__(self, progress: Optional[bool], darknet_log: bool, start: int, max_batches: int):
        self.darknet_log = darknet_log
        self.bar = None
        self.max_batches = max_batches
        self.hours_left = None
        if progress is None:
            progress = not darknet_log and sys.stderr.isatty()
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=max_batches or None, initial=start, unit="it", file=sys.stderr,
                            dynamic_ncols=True, desc="train")

    def header(self, base: str, net: Network, n_images: int) -> None:
        if self.darknet_log:
            info = net.info
            print(f"{base}\n1\nLearning Rate: {info['learning_rate']:g}, Momentum: {info['momentum']:g}, "
                  f"Decay: {info['decay']:g}\n{n_images}", flush=True)

    def loaded(self, seconds: float) -> None:
        if self.darknet_log:
            print(f"Loaded: {seconds:f} seconds", flush=True)

    def iteration(self, b: int, epochs: float, loss: float, avg: float, rate: float, cpu_s: float, seen: int,
                  wall_s: float, images_per_s: float) -> None:
        left = (max(self.max_batches - b, 0)) * wall_s / 3600
        self.hours_left = left if self.hours_left is None else 0.99 * self.hours_left + 0.01 * left
        if self.darknet_log:
            print(f"{b}, {epochs:.3f}: {loss:f}, {avg:f} avg, {rate:f} rate, {cpu_s:f} seconds, {seen} images, "
                  f"{self.hours_left:f} hours left", flush=True)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{loss:.4f}", avg=f"{avg:.4f}", rate=f"{rate:.3g}",
                                 img_s=f"{images_per_s:.1f}", refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train_classifier(data: PathLike, cfg: PathLike, weights: Optional[PathLike] = None, *, clear: bool = False,
                     max_batches: Optional[int] = None, backup_dir: Optional[PathLike] = None,
                     threads: Optional[int] = None, loader_threads: int = 2, allow_ambiguous: bool = False,
                     progress: Optional[bool] = None, darknet_log: bool = False, seed: Optional[int] = None,
                     callbacks: Optional[Iterable[Callable[[TrainProgress], Optional[bool]]]] = None,
                     ) -> TrainResult:
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
    """
    start_time = time.perf_counter()
    dc = read_data_cfg(data)
    labels = read_lines(dc.resolve(dc.labels))[:dc.classes]
    paths = read_list(dc.resolve(dc.train))
    if not paths:
        raise DarknetError(f"the train list {dc.train} has no image paths")
    check_labelled(paths, labels, allow_ambiguous=allow_ambiguous)
    net = Network(cfg, weights, batch=None, threads=threads)
    try:
        return _train(net, dc, labels, paths, cfg, clear, max_batches, backup_dir, loader_threads, progress,
                      darknet_log, seed, list(callbacks or ()), start_time)
    finally:
        net.close()


def _train(net, dc, labels, paths, cfg, clear, max_batches, backup_dir, loader_threads, progress, darknet_log,
           seed, callbacks, start_time) -> TrainResult:
    _check_classes(net, dc.classes)
    if clear:
        net.set_counters(0, 0)
    if seed is not None:
        net.seed(seed)
    info = net.info
    per_iteration = net.batch * net.subdivisions
    limit = info["max_batches"] if max_batches is None else int(max_batches)
    backup = Path(backup_dir if backup_dir is not None else dc.backup)
    backup.mkdir(parents=True, exist_ok=True)
    base = _cfg_base(cfg)

    def save(suffix) -> Path:
        path = backup / f"{base}_{suffix}.weights"
        log.info("Saving weights to %s", path)
        net.save_weights(path)
        return path

    loader = _Loader(paths, [dc.resolve(p) for p in paths], labels, dc.classes, info["label_smooth_eps"],
                     _Augment.from_info(info), loader_threads, seed)
    b = net.seen // per_iteration
    last_save = last_last = b
    reporter = _Reporter(progress, darknet_log, b, limit)
    reporter.header(base, net, len(paths))
    x = np.empty((per_iteration,) + net.input_shape, np.float32)
    y = np.empty((per_iteration, net.outputs), np.float32)
    losses: list = []
    avg = None
    try:
        loader.request(per_iteration)
        while limit == 0 or b < limit:
            t0 = time.perf_counter()
            loader.collect(x, y)
            loader.request(per_iteration)
            reporter.loaded(time.perf_counter() - t0)
            wall, cpu = time.perf_counter(), time.process_time()
            loss = net.train_step(x, y)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            avg = loss if avg is None or not math.isfinite(avg) else 0.9 * avg + 0.1 * loss
            losses.append(loss)
            b = net.seen // per_iteration
            rate = net.learning_rate
            reporter.iteration(b, net.seen / len(paths), loss, avg, rate, cpu, net.seen, wall,
                               per_iteration / max(wall, 1e-9))
            if b >= last_save + 1000:
                last_save = b
                save(b)
            if b >= last_last + 100:
                last_last = b
                save("last")
            status = TrainProgress(b, loss, avg, rate, net.seen, per_iteration / max(wall, 1e-9), net)
            if any([cb(status) is True for cb in callbacks]):
                break
    except KeyboardInterrupt:
        reporter.close()
        loader.close()
        save("last")
        raise
    reporter.close()
    loader.close()
    final = save("final")
    return TrainResult(final, len(losses), losses, time.perf_counter() - start_time, loader.skipped)
