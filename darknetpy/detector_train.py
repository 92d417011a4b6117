"""``darknet detector train`` (spec D7): the detector training loop, with random multi-scale
(D6.6), mAP during training, the chart and a guard against nan/inf losses.

The images and their boxes come from :class:`darknetpy.detection_data.DetectionLoader`
(augmentation per the cfg, loader threads); one :meth:`Network.train_step` per iteration
does every sub-batch and the update, as darknet's ``train_network``.
"""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

import numpy as np

from .augment import rand_scale
from .cfgfile import Section, read_cfg
from .chart import write_chart
from .data import DataConfig, read_data_cfg, read_list
from .detector_eval import MapResult, evaluate_detector
from .errors import CfgError, DarknetError, LossNotFiniteError
from .network import Network
from .training import Backups, Reporter, TrainProgress, TrainResult, cfg_base, saving_last_on_interrupt, smooth_loss

__all__ = ["train_detector", "DetectorTrainResult"]

log = logging.getLogger("darknetpy")
PathLike = Union[str, os.PathLike]
CHART_EVERY = 10   # iterations between chart rewrites (also after each mAP and at the end)
CLEAR_SCREEN, BELL = "\033[H\033[J", "\a"   # darknet's, around its status line; printed on terminals only


@dataclass(frozen=True)
class DetectorTrainResult(TrainResult):
    """What :func:`train_detector` did: :class:`~darknetpy.TrainResult` plus the mAP
    evaluations ``(iteration, mAP)``, the best one and its weights, and the chart."""
    maps: list = field(default_factory=list)
    best_map: Optional[float] = None
    best_weights: Optional[Path] = None
    chart: Optional[Path] = None


@dataclass(frozen=True)
class _Settings:
    """What the loop reads from the cfg beyond the engine's [net] info (the loader reads the rest)."""
    cfg: str
    net_section: Section   # [net]: resize_step, max_chart_loss
    head: int              # index of the last detection layer
    classes: int
    random: float          # its random= (0: fixed size)

    @classmethod
    def read(cls, cfg: PathLike, net: Network) -> "_Settings":
        heads = [layer.index for layer in net.layers if "detection" in layer.caps]
        if not heads:
            raise CfgError(f"{os.fspath(cfg)} has no detection layer ([yolo]); train a classifier with "
                           "darknetpy.train_classifier")
        sections = read_cfg(cfg)
        head = sections[heads[-1] + 1]
        return cls(os.fspath(cfg), sections[0], heads[-1], int(net.layer_attrs(heads[-1])["classes"]),
                   _number(cfg, head, "random", 0))

    def net_number(self, key: str, default: float) -> float:
        return _number(self.cfg, self.net_section, key, default)


def _number(cfg: PathLike, section: Section, key: str, default: float) -> float:
    value = section.get(key)
    try:
        return default if value is None else float(value)
    except ValueError:
        raise CfgError(f"{os.fspath(cfg)}:{section.line}: {section.type} {key}={value} is not a number") from None


@dataclass(frozen=True)
class _Options:
    """train_detector's keyword arguments."""
    clear: bool
    map: bool
    nan_ok: bool
    max_batches: Optional[int]
    backup_dir: Optional[PathLike]
    chart: Optional[PathLike]
    threads: Optional[int]
    loader_threads: int
    augment: bool
    thresh: float
    iou_thresh: float
    map_epochs: int
    progress: Optional[bool]
    darknet_log: bool
    seed: Optional[int]
    callbacks: tuple
    device: str = "cpu"


class _MultiScale:
    """random= training sizes (spec D6.6): every 10 iterations a random scale of the initial
    size in steps of resize_step; the largest size first and in the last 100 iterations."""

    def __init__(self, random: float, width: int, height: int, step: int, rng: np.random.Generator):
        self.coef = 1.4 if random == 1 else random
        self.width, self.height, self.step, self.rng = width, height, step, rng

    def _dim(self, scale: float, init: int) -> int:
        dim = int(math.floor(scale * init / self.step + 1.5)) * self.step   # roundl(s*init/step + 1)*step
        return max(init if scale < 1 and dim > init else dim, self.step)

    def pick(self, largest: bool) -> tuple:
        s = self.coef if largest else rand_scale(self.rng, self.coef)
        return self._dim(s, self.width), self._dim(s, self.height)


class _MapEvaluator:
    """mAP on the valid list with a batch-1 copy of the training network (spec D7.2): the
    weights go through a hidden file in the backup folder."""

    def __init__(self, data: DataConfig, cfg: PathLike, scratch: Path, threads: Optional[int],
                 thresh: float, iou_thresh: float, device: str = "cpu"):
        from .detector import Detector

        valid = data.resolve(data.get("valid") or data.get("train", "data/train.txt"))
        if not valid.is_file():
            raise DarknetError(f"There is no {valid} file for mAP calculation! Don't use -map (map=False), or set "
                               f"valid=<list of images> in {data.path}")
        self.data, self.scratch, self.thresh, self.iou_thresh = data, scratch, thresh, iou_thresh
        self.detector = Detector(cfg, None, data=data, threads=threads, device=device)

    def __call__(self, net: Network) -> MapResult:
        net.save_weights(self.scratch)
        try:
            self.detector.network.load_weights(self.scratch)
        finally:
            self.scratch.unlink(missing_ok=True)
        with np.errstate(over="ignore"):   # early in training boxes can be huge: their IoU is 0, rightly
            return evaluate_detector(self.data, self.detector.network.cfg_path, None, thresh=self.thresh,
                                     iou_thresh=self.iou_thresh, detector=self.detector)

    def close(self) -> None:
        self.detector.close()


def train_detector(data: PathLike, cfg: PathLike, weights: Optional[PathLike] = None, *, clear: bool = False,
                   map: bool = False, nan_ok: bool = False, max_batches: Optional[int] = None,
                   backup_dir: Optional[PathLike] = None, chart: Optional[PathLike] = None,
                   threads: Optional[int] = None, loader_threads: int = 2, augment: bool = True,
                   thresh: float = 0.25, iou_thresh: float = 0.5, map_epochs: int = 4,
                   progress: Optional[bool] = None, darknet_log: bool = False, seed: Optional[int] = None,
                   callbacks: Optional[Iterable[Callable[[TrainProgress], Optional[bool]]]] = None,
                   device: str = "cpu") -> DetectorTrainResult:
    """Train a detector as ``darknet detector train data cfg [weights] [-map] [-clear]`` does (spec D7).

    Reads the ``.data`` file (``train``, ``valid``, ``backup``, ``names``, ``saveweights``,
    ``savelast``). Each iteration loads ``batch`` images with their boxes (augmented per the cfg
    unless ``augment=False``) and performs one update; burn_in and the learning-rate policy follow the
    weights' counters, which ``clear=True`` resets (so training resumes from ``<cfg>_last.weights``).
    With ``random=`` in the last [yolo] the input size changes every 10 iterations (D6.6). Stops at
    ``max_batches`` (default: the cfg's).

    Backups in ``backup_dir`` (default: the .data ``backup``) as upstream names and schedules them:
    ``<cfg>_<i>.weights`` every ``saveweights`` (1000, or 10000 from max_batches 10000 on),
    ``<cfg>_last.weights`` every ``savelast`` (100), ``<cfg>_final.weights`` at the end, and with
    ``map=True`` ``<cfg>_best.weights`` at each best mAP@``iou_thresh`` on the valid list, evaluated
    every ``max(map_epochs`` epochs, 100) iterations from burn_in on and at the end. ``chart`` (default
    ``chart.png`` beside the backups) plots the average loss and the mAPs; every file is written
    atomically. Ctrl-C saves ``_last`` and re-raises ``KeyboardInterrupt``.

    A nan or inf loss raises :class:`~darknetpy.errors.LossNotFiniteError` naming the iteration, the
    [yolo] layer and the likely causes, without writing the bad weights; ``nan_ok=True`` goes on as
    darknet does. ``progress``, ``darknet_log``, ``seed`` and ``callbacks`` as in
    :func:`~darknetpy.train_classifier`; ``darknet_log`` also prints each head's line on stderr.
    ``device``: where the network trains (and the mAP copy runs), ``"cpu"`` or ``"cuda"``/``"cuda:N"``.
    """
    start_time = time.perf_counter()
    dc = read_data_cfg(data)
    paths = read_list(dc.resolve(dc.get("train", "data/train.txt")))
    if not paths:
        raise DarknetError(f"the train list {dc.get('train', 'data/train.txt')} has no image paths")
    opts = _Options(clear, map, nan_ok, max_batches, backup_dir, chart, threads, loader_threads, augment, thresh,
                    iou_thresh, map_epochs, progress, darknet_log, seed, tuple(callbacks or ()), device)
    # a training build checks the memory it needs first (OutOfMemoryError naming the subdivisions that fit)
    net = Network(cfg, weights, batch=None, threads=threads, device=device)
    try:
        return _Loop(net, dc, cfg, paths, opts).run(start_time)
    finally:
        net.close()


class _Loop:
    """One detector training run; ``run`` is spec D7.7."""

    def __init__(self, net: Network, dc: DataConfig, cfg: PathLike, paths: list, opts: _Options):
        self.net, self.dc, self.cfg, self.paths, self.opts = net, dc, cfg, paths, opts
        self.settings = _Settings.read(cfg, net)
        self._check_data()
        if opts.clear:
            net.set_counters(0, 0)
        seed = opts.seed
        self.seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
        if seed is not None:
            net.seed(seed)
        info = net.info
        self.info = info
        self.per_iteration = net.batch * net.subdivisions
        self.limit = info["max_batches"] if opts.max_batches is None else int(opts.max_batches)
        self.base = cfg_base(cfg)
        self.backup = Path(opts.backup_dir if opts.backup_dir is not None else dc.backup)
        self.chart = Path(opts.chart) if opts.chart is not None else self.backup / "chart.png"
        self.reporter = Reporter(opts.progress, opts.darknet_log, net.iteration, self.limit)
        self.iterations: list = []
        self.losses: list = []
        self.avgs: list = []
        self.maps: list = []
        self.best_map: Optional[float] = None
        self.best_weights: Optional[Path] = None
        self.warned_nan = False
        self.iteration = net.iteration

    def _check_data(self) -> None:
        cfg_batch = self.net.info["cfg_batch"]
        if cfg_batch == 1:
            raise CfgError(f"Error: You set incorrect value batch=1 for Training! You should set batch=64 "
                           f"subdivision=64 ([net] of {os.fspath(self.cfg)})")
        if cfg_batch < 8:
            log.warning("You set batch=%d lower than 64! It is recommended to set batch=64 subdivision=64",
                        cfg_batch)
        if self.settings.random and self.settings.net_number("dynamic_minibatch", 0):
            log.warning("%s: dynamic_minibatch=1 is not supported: the batch stays %d at every random size",
                        os.fspath(self.cfg), cfg_batch)
        if any(k == "classes" for k, _ in self.dc.options) and self.dc.classes != self.settings.classes:
            raise CfgError(f"{self.dc.path}: classes={self.dc.classes} but [yolo] layer {self.settings.head} of "
                           f"{os.fspath(self.cfg)} has classes={self.settings.classes}; set the same classes= in "
                           "both (and filters=(classes+5)*len(mask) in the convolution before each [yolo])")

    def _say_header(self, every: int, last_every: int) -> None:
        r, info = self.reporter, self.info
        if self.opts.map:
            r.say(" Prepare additional network for mAP calculation...")
        r.say(self.base)
        r.say(f"Weights are saved after: {every} iterations. Last weights (*_last.weight) are stored every "
              f"{last_every} iterations. ")
        r.say(f"Learning Rate: {info['learning_rate']:g}, Momentum: {info['momentum']:g}, "
              f"Decay: {info['decay']:g}")

    def run(self, start_time: float) -> DetectorTrainResult:
        from .detection_data import DetectionLoader

        net, opts, dc = self.net, self.opts, self.dc
        every = int(dc.get("saveweights") or (1000 if self.limit < 10000 else 10000))
        last_every = int(dc.get("savelast") or 100)
        self.backups = Backups(net, self.backup, self.base, self.iteration, every, last_every, detector_rule=True,
                               check=None if opts.nan_ok else self._check_weights)
        self._say_header(every, last_every)
        self.init_size = (net.width, net.height)
        rng = np.random.default_rng(self.seed)
        step = int(self.settings.net_number("resize_step", 32))
        self.scale = _MultiScale(self.settings.random, *self.init_size, step, rng) if self.settings.random else None
        self.map_each = max(opts.map_epochs * len(self.paths) // self.per_iteration, 100)
        self.map_at, self.count, self.avg = self.iteration, 0, None
        with contextlib.ExitStack() as stack:
            stack.callback(self.reporter.close)
            self.evaluator = stack.enter_context(contextlib.closing(_MapEvaluator(
                dc, self.cfg, self.backup / f".{self.base}_map.weights", opts.threads, opts.thresh,
                opts.iou_thresh, opts.device))) if opts.map else None
            self.loader = stack.enter_context(DetectionLoader.from_cfg(
                [str(dc.resolve(p)) for p in self.paths], self.cfg, classes=self.settings.classes,
                batch=self.per_iteration, seed=int(rng.integers(2 ** 31)), threads=opts.loader_threads,
                augment=opts.augment, first_batch=self.iteration))
            with saving_last_on_interrupt(self.backups):
                while self.iteration < self.limit and not self._iterate():
                    pass
        final = self.backups.save("final")
        self._write_chart()
        self.reporter.say("If you want to train from the beginning, then use flag in the end of training command: "
                          "-clear ")
        return DetectorTrainResult(final, len(self.losses), self.losses, time.perf_counter() - start_time,
                                   self.loader.skipped, self.maps, self.best_map, self.best_weights, self.chart)

    def _iterate(self) -> bool:
        """One iteration of spec D7.7; True when a callback asks to stop."""
        net, loader, scale = self.net, self.loader, self.scale
        if scale is not None and self.count % 10 == 0:
            self._resize(*scale.pick(self.avg is None or self.iteration > self.limit - 100), scale.coef)
        self.count += 1
        t0 = time.perf_counter()
        x, truths = loader.next()
        load_s = time.perf_counter() - t0
        slow = " - performance bottleneck on CPU or Disk HDD/SSD" if load_s > 0.1 and self.avg is not None else ""
        self.reporter.say(f"Loaded: {load_s:f} seconds{slow}")
        t0 = time.perf_counter()
        loss = net.train_step(x, truths)
        train_s = time.perf_counter() - t0
        iteration = self.iteration = net.iteration
        self._print_heads()
        if not math.isfinite(loss):
            self._not_finite(loss, iteration, x, self.loader.bad_labels)
        self.avg = avg = smooth_loss(self.avg, loss)
        self.iterations.append(iteration)
        self.losses.append(loss)
        self.avgs.append(avg)
        next_map = max(self.map_at + self.map_each, self.info["burn_in"])
        self._say_iteration(iteration, loss, avg, train_s, next_map)
        self.reporter.update_hours(iteration, train_s + load_s)
        evaluate = self.evaluator is not None and (iteration >= next_map or iteration == self.limit)
        if evaluate:
            if scale is not None:
                self._resize(*self.init_size, None)
            self.map_at = iteration
            self._evaluate(iteration)
        if evaluate or iteration % CHART_EVERY == 0:
            self._write_chart()
        self.backups.after(iteration)
        status = TrainProgress(iteration, loss, avg, net.learning_rate, net.seen,
                               self.per_iteration / max(train_s, 1e-9), net)
        return any([cb(status) is True for cb in self.opts.callbacks])

    def _resize(self, width: int, height: int, coef: Optional[float]) -> None:
        if coef is not None:
            self.reporter.say(f"Resizing, random_coef = {coef:.2f} \n\n {width} x {height} ")
        self.loader.resize(width, height)
        self.net.resize(width, height)

    def _print_heads(self) -> None:
        if not self.opts.darknet_log:
            return
        stats = self.net.detection_stats()
        lines = [s["line"] for s in stats.values() if s["line"]]
        total = sum(s["total_bbox"] for s in stats.values())
        if total:
            rewritten = sum(s["rewritten_bbox"] for s in stats.values())
            lines.append(f" total_bbox = {total}, rewritten_bbox = {100 * rewritten / total:f} % ")
        if lines:
            print("\n".join(lines), file=sys.stderr, flush=True)

    def _say_iteration(self, iteration: int, loss: float, avg: float, train_s: float, next_map: int) -> None:
        r = self.reporter
        prefix = ""
        if self.opts.map:
            prefix = f"\n (next mAP calculation at {next_map} iterations) "
            if self.maps:
                prefix += (f"\n Last accuracy mAP@{self.opts.iou_thresh:0.2f} = {self.maps[-1][1] * 100:2.2f} %, "
                           f"best = {self.best_map * 100:2.2f} % ")
        clear, bell = (CLEAR_SCREEN, BELL) if sys.stdout.isatty() else ("", "")
        hours = -1.0 if r.hours_left is None else r.hours_left
        scores = f" map={self.maps[-1][1]:0.2f} best={self.best_map:0.2f}" if self.maps else ""
        r.say(f"{prefix}{clear}{iteration}/{self.limit}: loss={loss:0.1f}{scores} hours left={hours:0.1f}{bell}")
        rate = self.net.learning_rate
        r.say(f" {iteration}: {loss:f}, {avg:f} avg loss, {rate:f} rate, {train_s:f} seconds, "
              f"{iteration * self.per_iteration} images, {hours:f} hours left")
        postfix = dict(loss=f"{loss:.3f}", avg=f"{avg:.3f}", rate=f"{rate:.3g}")
        if self.maps:
            postfix["mAP"] = f"{self.maps[-1][1]:.3f}"
        r.advance(**postfix)

    def _evaluate(self, iteration: int) -> None:
        r = self.reporter
        r.say("\n calculation mAP (mean average precision)...")
        result = self.evaluator(self.net)
        r.say(f"\n detections_count = {result.detections_count}, unique_truth_count = "
              f"{result.unique_truth_count}  \n{result}")
        value = result.map
        r.say(f"\n mean_average_precision (mAP@{self.opts.iou_thresh:0.2f}) = {value:f} ")
        log.info("mAP@%.2f after iteration %d: %f", self.opts.iou_thresh, iteration, value)
        self.maps.append((iteration, value))
        if self.best_map is None or value >= self.best_map:
            self.best_map = value
            r.say("New best mAP!")
            self.best_weights = self.backups.save("best")

    def _write_chart(self) -> None:
        write_chart(self.chart, self.iterations, self.avgs, self.limit, self.maps,
                    self.settings.net_number("max_chart_loss", 0) or None)

    def _check_weights(self) -> None:
        """Before a backup: refuse to write weights that are no longer finite (a learning rate that
        blew them up can leave one more finite loss behind it)."""
        for layer in self.net.layers:
            if "trainable" not in layer.caps:
                continue
            names = ("weights", "biases") + (("scales",) if layer.batch_normalize else ())
            if not all(np.isfinite(self.net.param(layer.index, name)).all() for name in names):
                raise LossNotFiniteError(
                    f"the weights of layer {layer.index} ({layer.type}) are nan/inf after the update of iteration "
                    f"{self.iteration}. Likely cause: learning rate {self.net.learning_rate:g} "
                    f"(learning_rate={self.info['learning_rate']:g}, burn_in={self.info['burn_in']}) too high; lower "
                    f"learning_rate in [net]. {self._kept_text()}", self.iteration, layer.index, self._kept())

    def _kept(self) -> Optional[Path]:
        """The newest good weights file: the last backup of this run, else the starting weights."""
        return self.backups.newest or (Path(self.net.weights_path) if self.net.weights_path else None)

    def _kept_text(self) -> str:
        kept = self._kept()
        return (f"The last good weights: {kept}. The bad weights were not saved; use nan_ok=True (-nan_ok) to go on "
                "as darknet does." if kept is not None else
                "No weights were saved before it (set savelast= in the .data file to save _last more often); use "
                "nan_ok=True (-nan_ok) to go on as darknet does.")

    def _not_finite(self, loss: float, iteration: int, x: np.ndarray, bad_labels: int) -> None:
        """nan_ok: warn once and go on (darknet's behaviour); else raise with the diagnosis."""
        stats = self.net.detection_stats()
        bad = [i for i, s in stats.items() if not all(math.isfinite(s[k]) for k in ("total_loss", "avg_iou",
                                                                                  "avg_obj", "avg_noobj"))]
        layer = bad[0] if bad else None
        if self.opts.nan_ok:
            if not self.warned_nan:
                log.warning("loss %s at iteration %d%s; going on (nan_ok)", loss, iteration,
                            f" ([yolo] layer {layer})" if layer is not None else "")
                self.warned_nan = True
            return
        info = self.info
        where = (f" in [yolo] layer {layer} (its cost: {stats[layer]['total_loss']})" if layer is not None
                 else "; no head shows it in the last mini-batch (an earlier sub-batch went bad)")
        causes = []
        if not np.isfinite(x).all():
            causes.append("the input images of this iteration hold nan/inf values")
        causes.append(f"bad labels: {bad_labels} label lines skipped so far (logged with file and line)"
                      if bad_labels else "bad labels: none reported so far")
        rate, burn_in = self.net.learning_rate, info["burn_in"]
        causes.append(f"learning rate {rate:g} (learning_rate={info['learning_rate']:g}): too high; lower "
                      "learning_rate in [net]")
        if burn_in == 0:
            causes.append("burn_in=0: no warm-up; set burn_in=1000 in [net] (fewer for short runs)")
        elif iteration <= burn_in:
            causes.append(f"burn_in={burn_in}: still warming up; a lower learning_rate or a longer burn_in helps")
        else:
            causes.append(f"burn_in={burn_in}: warm-up over; a longer burn_in may help")
        raise LossNotFiniteError(
            f"loss is {loss} at iteration {iteration}{where}. Likely causes:\n  - " + "\n  - ".join(causes) +
            f"\n{self._kept_text()}", iteration, layer, self._kept())
