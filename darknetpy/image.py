"""Image loading and darknet's geometric pre-processing (spec §5).

Images are float32 (C, H, W), RGB, values in [0, 1], as darknet holds them.
"""
from __future__ import annotations

import os
from typing import Union

import numpy as np

from . import _libdarknet
from .errors import InputError
from .paths import existing_file

__all__ = ["load_image", "to_chw", "resize_image", "letterbox_image", "resize_min", "resize_min_center_crop",
           "crop_image", "center_crop"]


def load_image(path: Union[str, os.PathLike]) -> np.ndarray:
    """darknet's ``load_image_color``: decode with OpenCV, RGB float32 CHW in [0, 1]."""
    import cv2

    path = existing_file(path, "image")
    _check_png_chunks(path)
    try:
        bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    except cv2.error as e:  # e.g. a header claiming more pixels than OpenCV allows
        raise InputError(f"cannot decode image {path}: OpenCV refuses it ({str(e).strip().splitlines()[-1]}); "
                         "is its header corrupt or its size absurd?") from None
    if bgr is None:
        raise InputError(f"cannot decode image {path}: not an image OpenCV reads (or corrupt)")
    return to_chw(bgr, "bgr")


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_png_chunks(path: str) -> None:
    """Refuse a PNG whose chunk lengths run past the end of the file: OpenCV (4.x) allocates
    a chunk's claimed size before reading it, so a 200-byte file can reserve 4 GiB."""
    with open(path, "rb") as f:
        if f.read(8) != _PNG_SIGNATURE:
            return
        size = os.fstat(f.fileno()).st_size
        while True:
            head = f.read(8)
            if len(head) < 8:
                return  # truncated: OpenCV reports it
            length, kind = int.from_bytes(head[:4], "big"), head[4:]
            end = f.tell() + length + 4
            if length > 0x7FFFFFFF or end > size:
                raise InputError(f"cannot decode image {path}: its PNG chunk {kind!r} claims {length} bytes, "
                                 f"past the end of the {size}-byte file (corrupt or truncated)")
            if kind == b"IEND":
                return
            f.seek(end)


def to_chw(image: np.ndarray, channel_order: str = "bgr") -> np.ndarray:
    """uint8 (H, W, 3) in ``channel_order`` ("bgr" as from cv2.imread, or "rgb"), or
    uint8 (H, W) grey -> float32 RGB (3, H, W) in [0, 1]."""
    if channel_order not in ("bgr", "rgb"):
        raise ValueError(f"channel_order must be 'bgr' or 'rgb', not {channel_order!r}")
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise TypeError(f"expected a uint8 (H, W, 3) or (H, W) image, not {a.dtype}")
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"expected a uint8 (H, W, 3) or (H, W) image, got shape {a.shape}")
    if a.size == 0:
        raise InputError(f"the image {a.shape} is empty; height and width must be at least 1")
    if channel_order == "bgr":
        a = a[:, :, ::-1]
    return np.ascontiguousarray(a.transpose(2, 0, 1), dtype=np.float32) / np.float32(255)


def _check_chw(im: np.ndarray) -> np.ndarray:
    im = np.ascontiguousarray(im, dtype=np.float32)
    if im.ndim != 3:
        raise InputError(f"expected a float32 (C, H, W) image, got shape {im.shape}")
    if im.size == 0:
        raise InputError(f"the image {im.shape} is empty; channels, height and width must be at least 1")
    return im


def _check_size(**sizes) -> None:
    for name, v in sizes.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not 1 <= v <= 1 << 16:
            raise InputError(f"{name} must be an int from 1 to 65536, not {v!r}")


def resize_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's ``resize_image`` (corner-aligned bilinear, last-row quirk; spec §5.2) -> new array."""
    im = _check_chw(im)
    _check_size(w=w, h=h)
    if im.shape[1:] == (h, w):
        return im.copy()
    return _libdarknet.resize_image(im, int(w), int(h))


def letterbox_image(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's ``letterbox_image`` (spec §5.3): keep the aspect ratio (integer sizes),
    ``resize_image`` and centre the result on a w x h canvas of 0.5."""
    im = _check_chw(im)
    c, ih, iw = im.shape
    if np.float32(w) / np.float32(iw) < np.float32(h) / np.float32(ih):
        nw, nh = w, ih * w // iw
    else:
        nw, nh = iw * h // ih, h
    out = np.full((c, h, w), 0.5, dtype=np.float32)
    top, left = (h - nh) // 2, (w - nw) // 2
    out[:, top:top + nh, left:left + nw] = resize_image(im, nw, nh)
    return out


def resize_min(im: np.ndarray, m: int) -> np.ndarray:
    """Scale the shorter side to ``m`` with integer truncation (spec §5.3)."""
    im = _check_chw(im)
    _check_size(m=m)
    _, h, w = im.shape
    if w < h:
        nw, nh = m, h * m // w
    else:
        nw, nh = w * m // h, m
    return im if (nw, nh) == (w, h) else _libdarknet.resize_image(im, nw, nh)


def resize_min_center_crop(im: np.ndarray, m: int, w: int, h: int) -> np.ndarray:
    """``center_crop(resize_min(im, m), w, h)`` with the same values, computing only the
    cropped window: a very long image (1 x 20000) does not make a huge intermediate."""
    im = _check_chw(im)
    _, ih, iw = im.shape
    nw, nh = (m, ih * m // iw) if iw < ih else (iw * m // ih, m)
    dx, dy = int((nw - w) / 2), int((nh - h) / 2)
    if (nw, nh) == (iw, ih) or dx < 0 or dy < 0 or dx + w > nw or dy + h > nh or max(nw, nh) >= 2**31:
        return center_crop(resize_min(im, m), w, h)
    return _libdarknet.resize_image_window(im, nw, nh, dx, dy, w, h)


def crop_image(im: np.ndarray, dx: int, dy: int, w: int, h: int) -> np.ndarray:
    """Crop a w x h window at (dx, dy); coordinates outside are clamped (edge replication)."""
    im = _check_chw(im)
    _, ih, iw = im.shape
    rows = np.clip(np.arange(dy, dy + h), 0, ih - 1)
    cols = np.clip(np.arange(dx, dx + w), 0, iw - 1)
    return np.ascontiguousarray(im[:, rows][:, :, cols])


def center_crop(im: np.ndarray, w: int, h: int) -> np.ndarray:
    """darknet's centre crop: offsets (W - w)/2, (H - h)/2 with C division (spec §5.3)."""
    _, ih, iw = im.shape
    return crop_image(im, int((iw - w) / 2), int((ih - h) / 2), w, h)
