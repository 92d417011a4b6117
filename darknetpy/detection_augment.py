"""One detector training image and its boxes (spec D6.3-D6.5): upstream's non-OpenCV
``load_data_detection`` (jitter crop with edge replication, [yolo] resize zoom, letter_box,
darknet's resize, flip, HSV distortion) and the batch-mixing extras mosaic, mixup, cutmix
and blur.

Boxes are float32 (k, 5) rows ``class x y w h``, relative to the image (centre form).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import _libdarknet
from .augment import distort, rand_scale
from .cfgfile import Section
from .errors import CfgError

__all__ = ["DetectionAugment", "augment_boxes_image", "training_image"]

log = logging.getLogger("darknetpy")

# [net] keys upstream uses to build detector training data that this loader does not implement.
_UNSUPPORTED = ("gaussian_noise", "angle", "track", "augment_speed", "contrastive", "contrastive_jit_flip",
                "contrastive_color")


# --------------------------------------------------------------------------- options

@dataclass(frozen=True)
class DetectionAugment:
    """A detector's data augmentation: the ``[net]`` options and ``jitter``/``resize`` of its last
    ``[yolo]``. Defaults are upstream's."""
    jitter: float = 0.2
    resize: float = 1.0
    flip: bool = True
    hue: float = 0.0
    saturation: float = 1.0
    exposure: float = 1.0
    letter_box: bool = False
    mixup: bool = False
    cutmix: bool = False
    mosaic: bool = False
    mosaic_bound: bool = False
    blur: int = 0

    @classmethod
    def from_net(cls, net, jitter: float = 0.2, resize: float = 1.0, source: str = "") -> "DetectionAugment":
        """From the [net] options: a str -> str mapping or a :class:`~darknetpy.cfgfile.Section`
        (then errors name the line; ``source`` = the cfg path for the messages)."""
        if isinstance(net, Section):
            opts: dict = {}
            for key, value, line in net.options:
                opts.setdefault(key, (value, line))  # darknet reads the first occurrence
        else:
            opts = {key: (str(value), None) for key, value in net.items()}

        def where(key: str) -> str:
            line = opts[key][1]
            return f"{source}:{line}: " if source and line else f"line {line}: " if line else ""

        def number(key: str, default: float) -> float:
            if key not in opts:
                return default
            try:
                return float(opts[key][0])
            except ValueError:
                raise CfgError(f"{where(key)}[net] {key}={opts[key][0]} is not a number") from None

        for key in _UNSUPPORTED:
            if number(key, 0) != 0:
                raise CfgError(f"{where(key)}[net] {key}={opts[key][0]} is not supported for detector training "
                               f"yet; remove it (or set it to 0)")
        aug = cls(jitter=float(jitter), resize=float(resize), flip=number("flip", 1) != 0, hue=number("hue", 0),
                  saturation=number("saturation", 1) or 1.0, exposure=number("exposure", 1) or 1.0,
                  letter_box=number("letter_box", 0) != 0, mixup=number("mixup", 0) != 0,
                  cutmix=number("cutmix", 0) != 0, mosaic=number("mosaic", 0) != 0,
                  mosaic_bound=number("mosaic_bound", 0) != 0, blur=int(number("blur", 0)))
        if aug.letter_box and aug.mosaic:
            raise CfgError(f"{where('mosaic')}[net] letter_box=1 and mosaic=1 cannot be combined (as upstream); "
                           "use only one of them")
        if not 0 <= aug.jitter < 0.5:
            raise CfgError(f"[yolo] jitter={aug.jitter:g} must be in [0, 0.5): it is the fraction of the image each "
                           "side may move")
        if aug.resize <= 0:
            raise CfgError(f"[yolo] resize={aug.resize:g} must be positive")
        return aug

    @property
    def mixes(self) -> tuple:
        return tuple(kind for kind in ("mixup", "cutmix", "mosaic") if getattr(self, kind))


# --------------------------------------------------------------------------- one image (D6.4)

@dataclass(frozen=True)
class _Placement:
    """Where the network image comes from in the original: the crop window (it may reach outside
    the image, where edge pixels are replicated) and the horizontal flip."""
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
    """D6.4's crop offsets: jitter (up to that fraction of the image per side), the [yolo] resize
    zoom, then letter_box padding. Without rng: no random part (plain resize or letter box)."""
    pleft = pright = ptop = pbot = 0
    flip = False
    if rng is not None:
        dw, dh = int(ow * aug.jitter), int(oh * aug.jitter)
        r = rng.random(6)
        pleft, pright = int(_lerp(-dw, dw, r[0])), int(_lerp(-dw, dw, r[1]))
        ptop, pbot = int(_lerp(-dh, dh, r[2])), int(_lerp(-dh, dh, r[3]))
        if aug.resize != 1:
            rdown = min(aug.resize, 1 / aug.resize)
            min_rdw, min_rdh = int(ow * (1 - 1 / rdown) / 2), int(oh * (1 - 1 / rdown) / 2)
            max_rdw, max_rdh = (0, 0) if aug.resize < 1 else (int(ow * (1 - rdown) / 2), int(oh * (1 - rdown) / 2))
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
        log.warning("invalid crop %d x %d of a %d x %d image (resize too large); using the whole image",
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
    """D6.3 step 2: boxes of the original image -> boxes of the network image (edges mapped through
    the crop, flipped, clamped to [0, 1]); boxes wholly outside the image get w = h = 0."""
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
    out[:, 3], out[:, 4] = right - left, bottom - top
    out[outside, 3:] = 0
    return out.astype(np.float32)


def _shuffle(boxes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """upstream's randomize_boxes: swap box i with a random box, for every i."""
    out = boxes.copy()
    n = len(out)
    for i, j in enumerate(rng.integers(n, size=n) if n else ()):
        out[[i, j]] = out[[j, i]]
    return out


def keep_boxes(boxes: np.ndarray, w: int, h: int, max_boxes: int) -> np.ndarray:
    """D6.3 step 3: the first max_boxes (before filtering, as upstream) without boxes smaller than
    one network pixel or centred outside (0, 1]."""
    b = boxes[:max_boxes]
    x, y, bw, bh = b[:, 1], b[:, 2], b[:, 3], b[:, 4]
    keep = (bw >= 1 / w) & (bh >= 1 / h) & (x > 0) & (x <= 1) & (y > 0) & (y <= 1)
    return np.ascontiguousarray(b[keep], dtype=np.float32)


def augment_boxes_image(bgr: np.ndarray, boxes: np.ndarray, w: int, h: int, aug: DetectionAugment,
                        rng: Optional[np.random.Generator]) -> tuple:
    """upstream's non-OpenCV ``load_data_detection`` for one image (D6.4): a uint8 BGR HWC image and its
    boxes -> float32 RGB CHW (3, h, w) in [0, 1] and its boxes shuffled and corrected (D6.3 steps 1-2;
    :func:`keep_boxes` does step 3). rng None: no random part."""
    oh, ow = bgr.shape[:2]
    p = _place(ow, oh, w, h, aug, rng)
    chw = _crop_chw(bgr, p)
    if chw.shape[1:] != (h, w):
        chw = _libdarknet.resize_image(chw, w, h)
    if p.flip:
        chw = chw[:, :, ::-1]
    if rng is not None:
        dhue = rng.uniform(-aug.hue, aug.hue)
        dsat, dexp = rand_scale(rng, aug.saturation), rand_scale(rng, aug.exposure)
        if (dhue, dsat, dexp) != (0, 1, 1):
            chw = distort(chw, dhue, dsat, dexp)
        boxes = _shuffle(boxes, rng)
    return np.ascontiguousarray(chw), _correct_boxes(boxes, p, ow, oh)


# --------------------------------------------------------------------------- mixing (D6.5)

def _edges(boxes: np.ndarray, w: int, h: int) -> tuple:
    x, y, bw, bh = (boxes[:, i].astype(np.float64) for i in range(1, 5))
    return (x - bw / 2) * w, (y - bh / 2) * h, (x + bw / 2) * w, (y + bh / 2) * h


def _from_edges(cls, left, top, right, bottom, w: int, h: int) -> np.ndarray:
    return np.stack([cls, (left + right) / 2 / w, (top + bottom) / 2 / h, (right - left) / w,
                     (bottom - top) / h], axis=1).astype(np.float32).reshape(-1, 5)


def _mosaic(parts: list, w: int, h: int, bound: bool, rng: np.random.Generator) -> tuple:
    """Four augmented W x H images in the quadrants around a random cut point (20-80 % of each side).
    Each quadrant shows the centre of its image; its boxes are shifted with it and kept if some of
    them shows in the quadrant, then clipped to the quadrant (mosaic_bound=1) or only to the image
    (upstream's default: boxes may reach into the neighbouring quadrants)."""
    cut_x = int(rng.integers(int(0.2 * w), int(0.8 * w) + 1))
    cut_y = int(rng.integers(int(0.2 * h), int(0.8 * h) + 1))
    out = np.empty((3, h, w), np.float32)
    truths = []
    quadrants = [(0, 0, cut_x, cut_y), (cut_x, 0, w, cut_y), (0, cut_y, cut_x, h), (cut_x, cut_y, w, h)]
    for (image, boxes), (x0, y0, x1, y1) in zip(parts, quadrants):
        qw, qh = x1 - x0, y1 - y0
        sx, sy = (w - qw) // 2, (h - qh) // 2
        out[:, y0:y1, x0:x1] = image[:, sy:sy + qh, sx:sx + qw]
        left, top, right, bottom = _edges(boxes, w, h)
        left, right, top, bottom = left + x0 - sx, right + x0 - sx, top + y0 - sy, bottom + y0 - sy
        shows = ((np.minimum(right, x1) - np.maximum(left, x0) >= 1) &
                 (np.minimum(bottom, y1) - np.maximum(top, y0) >= 1))
        lo_x, hi_x, lo_y, hi_y = (x0, x1, y0, y1) if bound else (0, w, 0, h)
        left, right = np.clip(left, lo_x, hi_x), np.clip(right, lo_x, hi_x)
        top, bottom = np.clip(top, lo_y, hi_y), np.clip(bottom, lo_y, hi_y)
        truths.append(_from_edges(boxes[:, 0], left, top, right, bottom, w, h)[shows])
    return out, np.concatenate(truths)


def _cutmix(base: tuple, patch: tuple, w: int, h: int, rng: np.random.Generator) -> tuple:
    """A random rectangle (30-80 % of each side) of the second image pasted on the first. Its boxes
    are clipped to the rectangle (kept if at least a pixel shows); boxes of the first image more than
    half covered are dropped. (Upstream's detector ignores cutmix=1; this is darknetpy's.)"""
    cw = int(rng.integers(int(0.3 * w), int(0.8 * w) + 1))
    ch = int(rng.integers(int(0.3 * h), int(0.8 * h) + 1))
    px, py = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = base[0].copy()
    out[:, py:py + ch, px:px + cw] = patch[0][:, py:py + ch, px:px + cw]
    left, top, right, bottom = _edges(patch[1], w, h)
    left, right = np.clip(left, px, px + cw), np.clip(right, px, px + cw)
    top, bottom = np.clip(top, py, py + ch), np.clip(bottom, py, py + ch)
    inside = _from_edges(patch[1][:, 0], left, top, right, bottom, w, h)[(right - left >= 1) & (bottom - top >= 1)]
    left, top, right, bottom = _edges(base[1], w, h)
    covered = (np.clip(np.minimum(right, px + cw) - np.maximum(left, px), 0, None) *
               np.clip(np.minimum(bottom, py + ch) - np.maximum(top, py), 0, None))
    kept = base[1][covered <= 0.5 * (right - left) * (bottom - top)]
    return out, np.concatenate([inside, kept])


def _blur(image: np.ndarray, truth: np.ndarray, blur: int, rng: np.random.Generator) -> np.ndarray:
    """blur=1 (OpenCV path extra): per image, nothing, the background outside the boxes, or the whole
    image (kernel ``blur``, 15 for blur=1; for the whole image at most an eighth of the smallest box
    side, so the objects stay recognisable)."""
    import cv2

    choice = int(rng.integers(3))
    if choice == 0:
        return image
    _, h, w = image.shape
    k = 15 if blur == 1 else blur
    if choice == 2 and len(truth):
        k = min(k, int(min(truth[:, 3].min() * w, truth[:, 4].min() * h) / 8))
    k = k // 2 * 2 + 1
    if k < 3:
        return image
    blurred = cv2.GaussianBlur(np.ascontiguousarray(image.transpose(1, 2, 0)), (k, k), 0).transpose(2, 0, 1)
    if choice == 1:
        left, top, right, bottom = _edges(truth, w, h)
        blurred = blurred.copy()
        for x0, y0, x1, y1 in zip(left.astype(int), top.astype(int), np.ceil(right).astype(int),
                                  np.ceil(bottom).astype(int)):
            blurred[:, max(y0, 0):y1, max(x0, 0):x1] = image[:, max(y0, 0):y1, max(x0, 0):x1]
    return np.ascontiguousarray(blurred)


def training_image(draw: Callable[[], tuple], w: int, h: int, aug: DetectionAugment,
                   rng: Optional[np.random.Generator], max_boxes: int = 200) -> tuple:
    """One network input and its truth: ``draw()`` gives a random (uint8 BGR HWC image, boxes) each
    call. With probability 1/2 (upstream's) an enabled mix (mosaic, mixup, cutmix; one of them at
    random if several) combines 4 or 2 augmented images; then blur. Returns float32 (3, h, w) and
    float32 (k, 5) boxes, the small ones dropped (D6.3)."""
    def one() -> tuple:
        return augment_boxes_image(*draw(), w, h, aug, rng)

    if rng is None or not aug.mixes or rng.integers(2):
        image, boxes = one()
    else:
        kind = aug.mixes[int(rng.integers(len(aug.mixes)))]
        if kind == "mosaic":
            image, boxes = _mosaic([one() for _ in range(4)], w, h, aug.mosaic_bound, rng)
        elif kind == "mixup":
            (a, boxes_a), (b, boxes_b) = one(), one()
            image, boxes = 0.5 * a + 0.5 * b, np.concatenate([boxes_b, boxes_a])
        else:
            image, boxes = _cutmix(one(), one(), w, h, rng)
    truth = keep_boxes(boxes, w, h, max_boxes)
    if rng is not None and aug.blur:
        image = _blur(image, truth, aug.blur, rng)
    return np.ascontiguousarray(image, dtype=np.float32), truth
