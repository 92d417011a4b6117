"""Pieces shared by the classifier and detector training loaders: darknet's random scale,
its HSV colour jitter (spec §5.5), image decoding that never stops training, and the
bookkeeping of skipped images."""
from __future__ import annotations

import logging
import threading
from typing import Optional

import numpy as np

from . import _libdarknet
from .errors import DarknetError

__all__ = ["rand_scale", "distort", "read_bgr", "SkippedImages", "unreadable"]

log = logging.getLogger("darknetpy")


def rand_scale(rng: np.random.Generator, s: float) -> float:
    """darknet's rand_scale: U(1, s) (or U(s, 1)), inverted with probability 1/2."""
    lo, hi = (1.0, s) if s >= 1 else (s, 1.0)
    v = rng.uniform(lo, hi)
    return v if rng.random() < 0.5 else 1.0 / v


def distort(chw: np.ndarray, dhue: float, dsat: float, dexp: float) -> np.ndarray:
    """darknet's HSV jitter of an RGB float32 CHW image: hue shifted and wrapped once, saturation
    and value scaled, back to RGB clamped to [0, 1] (in the engine; a new array)."""
    out = np.array(chw, dtype=np.float32, order="C")
    _libdarknet.hsv_jitter(out, dhue, dsat, dexp)
    return out


def read_bgr(path: str) -> tuple:
    """(uint8 BGR HWC image, None), or (None, why it cannot be read): a corrupt or missing
    file must not stop training."""
    import cv2

    try:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    except Exception as exc:  # cv2.error for absurd headers, and the like
        return None, str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if bgr is None or not bgr.size:
        return None, "missing, or not an image OpenCV reads"
    return bgr, None


class SkippedImages:
    """Counts unreadable training images and warns once per path (thread-safe)."""

    def __init__(self) -> None:
        self.count = 0
        self._reported: set = set()
        self._lock = threading.Lock()

    def add(self, path: str, problem: Optional[str]) -> None:
        with self._lock:
            self.count += 1
            first = path not in self._reported
            self._reported.add(path)
        if first:
            reason = f": {problem}" if problem else ""
            log.warning("Cannot load image %s%s (skipped)", path, reason)


def unreadable(tries: int, path: str) -> DarknetError:
    """The error when a loader finds no readable image in ``tries`` draws."""
    return DarknetError(f"{tries} images in a row could not be loaded (last: {path}); check the train list")
