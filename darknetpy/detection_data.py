"""darknet's detection training data (spec D6): random images with replacement, the
jitter crop / flip / HSV distortion of upstream's ``load_data_detection`` (D6.4), the truth
boxes corrected for them (D6.3), letter_box, and multi-scale resizing (D6.6).

Loader threads build the next batch while the caller trains (OpenCV and the engine's resize
release the GIL). Every random choice of image k of batch b comes from its own generator
seeded with (seed, b, k), so batches are identical whatever the thread count or timing.
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import numpy as np

from . import _libdarknet
from .cfgfile import Section
from .errors import CfgError, DarknetError
from .train import _distort, _rand_scale
from .yolo_labels import label_path, read_labels

__all__ = ["label_path", "read_labels", "DetectionLoader"]

log = logging.getLogger("darknetpy")


# --------------------------------------------------------------------------- options

def _net_options(net) -> dict:
    """key -> (value, line or None) from a [net] Section or a str -> str mapping."""
    if isinstance(net, Section):
        out: dict = {}
        for key, value, line in net.options:
            out.setdefault(key, (value, line))  # darknet reads the first occurrence
        return out
    return {key: (str(value), None) for key, value in net.items()}


@dataclass(frozen=True)
class DetectionAugment:
    """The augmentation settings of a detector's training (``[net]``, and ``jitter``/``resize``
    of its last ``[yolo]``)."""
    jitter: float = 0.2
    resize: float = 1.0
    flip: bool = True
    hue: float = 0.0
    saturation: float = 1.0
    exposure: float = 1.0
    letter_box: bool = False

    @classmethod
    def from_net(cls, net, jitter: float, resize: float) -> "DetectionAugment":
        opts = _net_options(net)

        def number(key: str, default: float) -> float:
            value, line = opts.get(key, (None, None))
            if value is None:
                return default
            try:
                return float(value)
            except ValueError:
                where = f" (line {line})" if line else ""
                raise CfgError(f"[net] {key}={value}{where} is not a number") from None

        return cls(jitter=jitter, resize=resize, flip=number("flip", 1) != 0, hue=number("hue", 0),
                   saturation=number("saturation", 1) or 1.0, exposure=number("exposure", 1) or 1.0,
                   letter_box=number("letter_box", 0) != 0)


# --------------------------------------------------------------------------- one image (D6.4)

@dataclass(frozen=True)
class _Placement:
    """Where the W x H network image comes from in the original: the crop window (may reach
    outside the image: edge pixels are replicated) and the horizontal flip."""
    left: int
    top: int
    width: int
    height: int
    flip: bool


def _lerp(a: float, b: float, r: float) -> float:
    lo, hi = (a, b) if a <= b else (b, a)
    return lo + r * (hi - lo)


def _place(ow: int, oh: int, w: int, h: int, aug: DetectionAugment, rng: Optional[np.random.Generator]
           ) -> _Placement:
    """D6.4's crop offsets: jitter (a fraction of the image size per side), the [yolo] resize zoom,
    then letter_box padding. Without rng: no random part (plain resize or letter box)."""
    pleft = pright = ptop = pbot = 0
    flip = False
    if rng is not None:
        dw, dh = int(ow * aug.jitter), int(oh * aug.jitter)
        r = rng.random(6)
        pleft, pright = int(_lerp(-dw, dw, r[0])), int(_lerp(-dw, dw, r[1]))
        ptop, pbot = int(_lerp(-dh, dh, r[2])), int(_lerp(-dh, dh, r[3]))
        if aug.resize != 1:
            rdown = min(aug.resize, 1 / aug.resize)
            rup = 1 / rdown
            min_rdw, min_rdh = int(ow * (1 - 1 / rdown) / 2), int(oh * (1 - 1 / rdown) / 2)
            max_rdw, max_rdh = (0, 0) if aug.resize < 1 else (int(ow * (1 - 1 / rup) / 2),
                                                              int(oh * (1 - 1 / rup) / 2))
            pleft += int(_lerp(min_rdw, max_rdw, r[4]))
            pright += int(_lerp(min_rdw, max_rdw, r[5]))
            ptop += int(_lerp(min_rdh, max_rdh, r[4]))
            pbot += int(_lerp(min_rdh, max_rdh, r[5]))
        flip = aug.flip and bool(rng.integers(2))
    if aug.letter_box:
        net_ar = w / h
        if (ow / oh) / net_ar > 1:
            delta = (ow / net_ar - oh) / 2
            ptop, pbot = int(ptop - delta), int(pbot - delta)
        else:
            delta = (oh * net_ar - ow) / 2
            pleft, pright = int(pleft - delta), int(pright - delta)
    swidth, sheight = ow - pleft - pright, oh - ptop - pbot
    if swidth < 1 or sheight < 1:
        log.warning("invalid crop %d x %d of a %d x %d image (jitter/resize too large); using the whole image",
                    swidth, sheight, ow, oh)
        pleft, ptop, swidth, sheight = 0, 0, ow, oh
    return _Placement(pleft, ptop, swidth, sheight, flip)


def _crop_chw(bgr: np.ndarray, p: _Placement) -> np.ndarray:
    """The crop window of a uint8 BGR HWC image as float32 RGB CHW in [0, 1]; outside the image
    the nearest edge pixel is repeated (upstream's crop_image)."""
    import cv2

    oh, ow = bgr.shape[:2]
    x0, y0, x1, y1 = p.left, p.top, p.left + p.width, p.top + p.height
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, ow), min(y1, oh)
    if ix0 < ix1 and iy0 < iy1:
        part = bgr[iy0:iy1, ix0:ix1]
        if (ix0, iy0, ix1, iy1) != (x0, y0, x1, y1):
            part = cv2.copyMakeBorder(part, iy0 - y0, y1 - iy1, ix0 - x0, x1 - ix1, cv2.BORDER_REPLICATE)
    else:  # the window misses the image: every pixel is a clamped edge pixel
        part = bgr[np.clip(np.arange(y0, y1), 0, oh - 1)][:, np.clip(np.arange(x0, x1), 0, ow - 1)]
    return np.ascontiguousarray(part[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32) * np.float32(1 / 255)


def _correct_boxes(boxes: np.ndarray, p: _Placement, ow: int, oh: int) -> np.ndarray:
    """D6.3 step 2: boxes (k, 5) of the original image -> boxes of the network image (edges mapped
    through the crop, flipped, clamped to [0, 1]); boxes lying wholly outside the image get w = h = 0."""
    out = boxes.astype(np.float64)
    x, y, w, h = out[:, 1], out[:, 2], out[:, 3], out[:, 4]
    outside = (x + w / 2 < 0) | (y + h / 2 < 0) | (x - w / 2 > 1) | (y - h / 2 > 1)
    sx, sy = ow / p.width, oh / p.height
    dx, dy = p.left / p.width, p.top / p.height
    left, right = (x - w / 2) * sx - dx, (x + w / 2) * sx - dx
    top, bottom = (y - h / 2) * sy - dy, (y + h / 2) * sy - dy
    if p.flip:
        left, right = 1 - right, 1 - left
    left, right, top, bottom = (np.clip(v, 0, 1) for v in (left, right, top, bottom))
    out[:, 1], out[:, 2] = (left + right) / 2, (top + bottom) / 2
    out[:, 3], out[:, 4] = np.clip(right - left, 0, 1), np.clip(bottom - top, 0, 1)
    out[outside, 3:] = 0
    return out.astype(np.float32)


def _shuffle(boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """upstream's randomize_boxes: swap box i with a random box, for every i."""
    out = boxes.copy()
    n = len(out)
    for i, j in enumerate(rng.integers(n, size=n) if n else ()):
        out[[i, j]] = out[[j, i]]
    return out


def _keep_boxes(boxes: np.ndarray, w: int, h: int, max_boxes: int) -> np.ndarray:
    """D6.3 step 3: at most max_boxes (before filtering, as upstream), without boxes smaller than
    one network pixel or centred outside (0, 1]."""
    b = boxes[:max_boxes]
    x, y, bw, bh = b[:, 1], b[:, 2], b[:, 3], b[:, 4]
    keep = (bw >= 1 / w) & (bh >= 1 / h) & (x > 0) & (x <= 1) & (y > 0) & (y <= 1)
    return np.ascontiguousarray(b[keep])


def augment_detection(bgr: np.ndarray, boxes: np.ndarray, w: int, h: int, aug: DetectionAugment,
                      rng: Optional[np.random.Generator], max_boxes: int = 200) -> tuple:
    """upstream's non-OpenCV ``load_data_detection`` for one image (spec D6.4): a uint8 BGR HWC image
    and its (k, 5) boxes -> float32 RGB CHW (3, h, w) in [0, 1] and the boxes of that image (D6.3:
    shuffled, corrected, small ones dropped, at most max_boxes). rng None: no random part."""
    oh, ow = bgr.shape[:2]
    p = _place(ow, oh, w, h, aug, rng)
    chw = _crop_chw(bgr, p)
    if chw.shape[1:] != (h, w):
        chw = _libdarknet.resize_image(chw, w, h)
    if p.flip:
        chw = chw[:, :, ::-1]
    if rng is not None:
        dhue = rng.uniform(-aug.hue, aug.hue)
        dsat, dexp = _rand_scale(rng, aug.saturation), _rand_scale(rng, aug.exposure)
        if (dhue, dsat, dexp) != (0, 1, 1):
            hwc = _distort(np.ascontiguousarray(chw.transpose(1, 2, 0)), dhue, dsat, dexp)
            chw = hwc.transpose(2, 0, 1)
        boxes = _shuffle(boxes, rng)
    truth = _keep_boxes(_correct_boxes(boxes, p, ow, oh), w, h, max_boxes)
    return np.ascontiguousarray(chw), truth


# --------------------------------------------------------------------------- the loader

class DetectionLoader:
    """Batches of augmented detector training images, prefetched on ``threads`` threads.

    ``net``: the ``[net]`` options (a str -> str mapping, or a :class:`~darknetpy.cfgfile.Section`
    so errors name the line); ``jitter``/``resize``: those of the last ``[yolo]`` (upstream takes them
    from there). ``augment=False``: plain resize (or letter box), no random crop/flip/colour.
    :meth:`next` returns ``(x, truths)``: x float32 (batch, 3, height, width) RGB in [0, 1] and one
    float32 (k, 5) array ``class x y w h`` per image. Images are drawn uniformly with replacement
    (upstream's get_random_paths); an unreadable image is skipped with a warning and replaced."""

    def __init__(self, paths: Sequence[str], *, width: int, height: int, classes: int, batch: int,
                 net: Mapping[str, str], max_boxes: int = 200, seed: int = 0, threads: int = 2,
                 augment: bool = True, jitter: float = 0.2, resize: float = 1.0):
        self.paths = [os.fspath(p) for p in paths]
        if not self.paths:
            raise DarknetError("the detector train list has no image paths")
        if batch < 1 or classes < 1 or max_boxes < 1:
            raise ValueError(f"batch ({batch}), classes ({classes}) and max_boxes ({max_boxes}) must be >= 1")
        self.classes, self.batch, self.max_boxes = classes, batch, max_boxes
        self.seed, self.augment = int(seed), augment
        self.options = DetectionAugment.from_net(net, jitter, resize)
        self.size = (int(width), int(height))
        self.skipped = 0
        self._labels: dict = {}
        self._bad_images: set = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="darknetpy-detection-loader")
        self._batch_index = 0
        self._pending: Optional[tuple] = None
        self._request()

    # -- public

    def resize(self, width: int, height: int) -> None:
        """Deliver the next batches at width x height (multi-scale training, D6.6); the batch being
        prefetched is discarded and reloaded at the new size."""
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
        """Stop the loader threads (waits for the images being loaded)."""
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
        if self._pending is not None:
            for f in self._pending[1]:
                f.cancel()
            for f in self._pending[1]:
                if not f.cancelled():
                    f.exception()  # wait: it writes into the discarded array
            self._pending = None

    def _fill(self, x: np.ndarray, k: int, batch_index: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, batch_index, k])
        _, h, w = x.shape[1:]
        i, bgr = self._draw(rng)
        image, truth = augment_detection(bgr, self._boxes(i), w, h, self.options,
                                         rng if self.augment else None, self.max_boxes)
        x[k] = image
        return truth

    def _draw(self, rng: np.random.Generator) -> tuple:
        """A random image (index, uint8 BGR HWC); unreadable ones are skipped with a warning."""
        import cv2

        for _ in range(max(100, 10 * self.batch)):
            i = int(rng.integers(len(self.paths)))
            try:
                bgr = cv2.imread(self.paths[i], cv2.IMREAD_COLOR)
                problem = "not an image OpenCV reads, or missing" if bgr is None else None
            except Exception as exc:  # a corrupt file must not stop training
                bgr, problem = None, str(exc)
            if bgr is not None and bgr.size:
                return i, bgr
            self._skip(i, problem or "empty image")
        raise DarknetError(f"{max(100, 10 * self.batch)} images in a row could not be loaded (last: "
                           f"{self.paths[i]}); check the train list")

    def _skip(self, i: int, problem: str) -> None:
        with self._lock:
            self.skipped += 1
            first = i not in self._bad_images
            self._bad_images.add(i)
        if first:
            log.warning("Cannot load image %s: %s (skipped)", self.paths[i], problem)

    def _boxes(self, i: int) -> np.ndarray:
        """The validated boxes of image i, read once (so each bad line is reported once)."""
        with self._lock:
            if i not in self._labels:
                self._labels[i] = read_labels(self.paths[i], self.classes)
            return self._labels[i]
