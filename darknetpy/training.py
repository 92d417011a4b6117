"""Pieces every training loop shares (classifier spec §4.8, detector spec D7): the progress
report, the smoothed loss, upstream's backup schedule and the Ctrl-C rule (save ``_last``,
re-raise)."""
from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

from .network import Network

__all__ = ["TrainResult", "TrainProgress", "Reporter", "Backups", "cfg_base", "smooth_loss", "saving_last_on_interrupt"]

log = logging.getLogger("darknetpy")
PathLike = Union[str, os.PathLike]


@dataclass(frozen=True)
class TrainResult:
    """What a training call did: the ``_final`` weights, the iterations run in this call, the
    per-iteration losses, wall time and the number of unreadable images skipped."""
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


def cfg_base(cfg: PathLike) -> str:
    """upstream's basecfg: the cfg's file name up to its first '.' (names the backups)."""
    return Path(cfg).name.split(".")[0]


def smooth_loss(avg: Optional[float], loss: float) -> float:
    """darknet's avg loss: the first loss (or the next one after a NaN), then 0.9 avg + 0.1 loss."""
    return loss if avg is None or not math.isfinite(avg) else 0.9 * avg + 0.1 * loss


class Reporter:
    """Training progress: a tqdm bar on stderr, and/or (``darknet_log``) darknet's own lines on
    stdout through :meth:`say`; keeps darknet's smoothed hours left."""

    def __init__(self, progress: Optional[bool], darknet_log: bool, start: int, max_batches: int):
        self.darknet_log = darknet_log
        self.bar = None
        self.max_batches = max_batches
        self.hours_left: Optional[float] = None
        if progress is None:
            progress = not darknet_log and sys.stderr.isatty()
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(total=max_batches or None, initial=start, unit="it", file=sys.stderr,
                            dynamic_ncols=True, desc="train")

    def say(self, text: str, end: str = "\n") -> None:
        """Print one of darknet's lines (only with ``darknet_log``)."""
        if self.darknet_log:
            print(text, end=end, flush=True)

    def update_hours(self, iteration: int, seconds: float) -> float:
        """Fold this iteration's time into the hours left (darknet's 0.99/0.01 smoothing)."""
        left = max(self.max_batches - iteration, 0) * seconds / 3600
        self.hours_left = left if self.hours_left is None else 0.99 * self.hours_left + 0.01 * left
        return self.hours_left

    def advance(self, **postfix) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(refresh=False, **postfix)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Backups:
    """``<backup>/<base>_<suffix>.weights`` files, written atomically, on upstream's schedule:
    ``_<i>`` once ``every`` iterations passed since the last one (the detector also at each
    multiple of ``every``) and ``_last`` once ``last_every`` passed (the detector also at each
    multiple after iteration 1, and only when ``every > last_every``). ``check`` runs before each
    save and may raise to keep a bad network out of the files."""

    def __init__(self, net: Network, directory: PathLike, base: str, start: int, every: int, last_every: int,
                 detector_rule: bool = False, check: Optional[Callable[[], None]] = None):
        self.net, self.directory, self.base, self.check = net, Path(directory), base, check
        self.every, self.last_every, self.detector_rule = every, last_every, detector_rule
        self.saved_at = self.last_at = start
        self.newest: Optional[Path] = None   # the last file written
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, suffix) -> Path:
        return self.directory / f"{self.base}_{suffix}.weights"

    def save(self, suffix) -> Path:
        path = self.path(suffix)
        if self.check is not None:
            self.check()
        log.info("Saving weights to %s", path)
        self.net.save_weights(path)
        self.newest = path
        return path

    def after(self, iteration: int) -> None:
        """Write what the schedule asks for after ``iteration``."""
        rule = self.detector_rule
        if iteration >= self.saved_at + self.every or (rule and iteration % self.every == 0):
            self.saved_at = iteration
            self.save(iteration)
        if rule and self.every <= self.last_every:
            return
        if iteration >= self.last_at + self.last_every or (rule and iteration % self.last_every == 0
                                                           and iteration > 1):
            self.last_at = iteration
            self.save("last")


@contextlib.contextmanager
def saving_last_on_interrupt(backups: Backups) -> Iterator[None]:
    """Ctrl-C inside the block saves ``<base>_last.weights`` and re-raises KeyboardInterrupt."""
    try:
        yield
    except KeyboardInterrupt:
        log.warning("interrupted: saving %s", backups.path("last"))
        backups.save("last")
        raise
