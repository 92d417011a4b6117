"""darknet's detection training data (spec D6): batches of random training images (with
replacement, as upstream's get_random_paths) augmented as ``load_data_detection`` does
(:mod:`darknetpy.detection_augment`) and their truth boxes; :meth:`DetectionLoader.resize` switches
sizes for multi-scale training (D6.6).

Loader threads build the next batch while the caller trains (OpenCV and the engine's resize
release the GIL). Every random choice for image k of batch b comes from its own generator
seeded with (seed, b, k), so batches are identical whatever the thread count or timing.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping, Optional, Sequence, Union

import numpy as np

from .augment import SkippedImages, read_bgr, unreadable
from .cfgfile import Section, read_cfg
from .detection_augment import DetectionAugment, training_image
from .errors import CfgError, DarknetError
from .yolo_labels import label_path, read_labels, read_labels_counted

__all__ = ["label_path", "read_labels", "DetectionLoader"]

_HEADS = ("yolo", "gaussian_yolo", "region", "detection")


class DetectionLoader:
    """Batches of augmented detector training images, prefetched on ``threads`` threads.

    ``net``: the ``[net]`` options (a str -> str mapping, or a :class:`~darknetpy.cfgfile.Section`
    so that errors name the line); ``jitter``/``resize``: those of the last ``[yolo]``, where upstream
    reads them (:meth:`from_cfg` does all this from a cfg file). ``augment=False``: plain resize (or
    letter box) only. :meth:`next` returns ``(x, truths)``: x float32 (batch, 3, height, width) RGB in
    [0, 1], and per image a float32 (k, 5) array of ``class x y w h`` (relative centre form). An
    unreadable image is skipped with a warning naming it and replaced by another draw; bad label lines
    are skipped with a warning (:func:`read_labels`), each once. ``seed`` None: a random seed;
    ``first_batch``: the index of the first batch (a resumed run passes its iteration, so that it does
    not replay the first batches)."""

    def __init__(self, paths: Sequence[str], *, width: int, height: int, classes: int, batch: int,
                 net: Union[Mapping[str, str], Section], max_boxes: int = 200, seed: Optional[int] = 0,
                 threads: int = 2, augment: bool = True, jitter: float = 0.2, resize: float = 1.0,
                 first_batch: int = 0, source: str = ""):
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise DarknetError("the detector train list has no image paths")
        for name, value in (("width", width), ("height", height), ("classes", classes), ("batch", batch),
                            ("max_boxes", max_boxes), ("threads", threads)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, not {value}")
        self.classes, self.batch, self.max_boxes = int(classes), int(batch), int(max_boxes)
        if seed is not None and seed < 0:
            raise ValueError(f"seed must be >= 0 (or None for a random one), not {seed}")
        self.seed = int(np.random.SeedSequence().entropy) if seed is None else int(seed)
        self.augment = bool(augment)
        self.options = DetectionAugment.from_net(net, jitter, resize, source)
        self.size = (int(width), int(height))
        self.skips = SkippedImages()
        self._labels: dict = {}
        self._labels_lock = threading.Lock()
        self._bad_labels = 0
        self._pool = ThreadPoolExecutor(int(threads), thread_name_prefix="darknetpy-detection-loader")
        self._batch_index = int(first_batch)
        self._pending: Optional[tuple] = None
        self._request()

    @classmethod
    def from_cfg(cls, paths: Sequence[str], cfg: Union[str, os.PathLike], *, classes: int,
                 batch: Optional[int] = None, **kwargs) -> "DetectionLoader":
        """A loader for training ``cfg``: size and augmentation from its [net], ``jitter``, ``resize`` and
        ``max`` (max_boxes) from its last detection layer, ``batch`` (default) = the images of one
        iteration (the cfg's batch, a multiple of subdivisions). Other keywords as the constructor."""
        sections = read_cfg(cfg)
        if not sections or sections[0].name not in ("net", "network"):
            raise CfgError(f"{os.fspath(cfg)}: the first section must be [net]")
        net = sections[0]
        heads = [s for s in sections if s.name in _HEADS]
        if not heads:
            raise CfgError(f"{os.fspath(cfg)}: no [yolo] (or [region]) layer: not a detector cfg")

        def number(section: Section, key: str, default: float) -> float:
            value = section.get(key)
            try:
                return default if value is None else float(value)
            except ValueError:
                raise CfgError(f"{os.fspath(cfg)}:{section.line}: {section.type} {key}={value} is not a "
                               "number") from None

        if int(number(net, "channels", 3)) != 3:
            raise CfgError(f"{os.fspath(cfg)}:{net.line}: [net] channels={net.get('channels')}: detector training "
                           "reads colour images; use channels=3")
        if batch is None:
            subdivisions = max(int(number(net, "subdivisions", 1)), 1)
            batch = int(number(net, "batch", 1)) // subdivisions * subdivisions
        return cls(paths, width=int(number(net, "width", 0)), height=int(number(net, "height", 0)),
                   classes=classes, batch=batch, net=net, source=os.fspath(cfg),
                   jitter=number(heads[-1], "jitter", 0.2), resize=number(heads[-1], "resize", 1.0),
                   max_boxes=int(number(heads[-1], "max", 200)), **kwargs)

    # -- public

    @property
    def skipped(self) -> int:
        """Unreadable images skipped so far."""
        return self.skips.count

    @property
    def bad_labels(self) -> int:
        """Bad label lines skipped so far (each warned once, with its file and line)."""
        return self._bad_labels

    def resize(self, width: int, height: int) -> None:
        """Deliver the next batches at width x height (multi-scale training, D6.6): the batch being
        prefetched is discarded and loaded again at the new size, as upstream does."""
        if int(width) < 1 or int(height) < 1:
            raise ValueError(f"the input size must be positive, not {width} x {height}")
        if (int(width), int(height)) == self.size:
            return
        self.size = (int(width), int(height))
        self._cancel()
        self._request()

    def next(self) -> tuple:
        """The next batch ``(x, truths)``; starts loading the one after."""
        if self._pending is None:
            raise DarknetError("the detection loader is closed")
        x, futures = self._pending
        truths = [f.result() for f in futures]
        self._batch_index += 1
        self._request()
        return x, truths

    def close(self) -> None:
        """Stop the loader threads (waits for images being loaded)."""
        self._cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "DetectionLoader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals

    def _request(self) -> None:
        w, h = self.size
        x = np.empty((self.batch, 3, h, w), np.float32)
        futures = [self._pool.submit(self._fill, x, k, self._batch_index) for k in range(self.batch)]
        self._pending = (x, futures)

    def _cancel(self) -> None:
        if self._pending is None:
            return
        futures, self._pending = self._pending[1], None
        for f in futures:
            f.cancel()
        for f in futures:  # the running ones still write into the discarded array: let them finish
            if not f.cancelled():
                f.exception()

    def _fill(self, x: np.ndarray, k: int, batch_index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, batch_index, k])
        h, w = x.shape[2:]
        image, truth = training_image(lambda: self._draw(rng), w, h, self.options,
                                      rng if self.augment else None, self.max_boxes)
        x[k] = image
        return truth

    def _draw(self, rng: np.random.Generator) -> tuple:
        """A random readable image (uint8 BGR HWC) and its boxes."""
        tries = max(100, 10 * self.batch)
        for _ in range(tries):
            i = int(rng.integers(len(self.paths)))
            bgr, problem = read_bgr(self.paths[i])
            if bgr is not None:
                return bgr, self._boxes(i)
            self.skips.add(self.paths[i], problem)
        raise unreadable(tries, self.paths[i])

    def _boxes(self, i: int) -> np.ndarray:
        """The validated boxes of image i, read once (so each bad line is reported once)."""
        with self._labels_lock:
            if i not in self._labels:
                self._labels[i], bad = read_labels_counted(self.paths[i], self.classes)
                self._bad_labels += bad
            return self._labels[i]
