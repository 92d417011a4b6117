"""Fuzz image loading and darknet's pre-processing: raw bytes as an image file (first
byte even) through load_image, resize_min, centre crop and resize_image; or (odd) a
numpy array of fuzzed shape and dtype through to_chw and the geometric helpers.

    python tests/fuzz/fuzz_image.py -max_total_time=1800 [corpus_dir]
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

STATS = common.Stats("fuzz_image")
PATH = []
MAX_PIXELS = 4_000_000  # the classifier's upscale of a thin image is issue 11 (memory), not tried here
DTYPES = [np.uint8, np.float32, np.float64, np.int16, np.bool_]


def prepare(im: np.ndarray, m: int) -> None:
    dn = common.dn
    h, w = im.shape[-2:] if im.ndim >= 2 else (1, 1)
    if max(w * m // max(h, 1), h * m // max(w, 1)) * m > MAX_PIXELS:
        return
    small = dn.image.center_crop(dn.image.resize_min(im, m), m, m)
    assert small.shape == (im.shape[0], m, m)
    dn.image.resize_image(im, m + 1, m + 2)


def from_file(b: common.Bytes) -> None:
    if not PATH:
        PATH.append(common.scratch_file(".img"))
    with open(PATH[0], "wb") as f:
        f.write(b.rest())
    im = common.dn.load_image(PATH[0])
    if im.shape[1] * im.shape[2] <= MAX_PIXELS:
        prepare(im, 1 + b.byte() % 32)


def from_array(b: common.Bytes) -> None:
    shape = tuple(b.byte() % 7 for _ in range(1 + b.byte() % 4))
    dtype = b.pick(DTYPES)
    a = np.frombuffer((b.rest() * (1 + int(np.prod(shape)) * 8))[:int(np.prod(shape)) * np.dtype(dtype).itemsize]
                      or bytes(np.dtype(dtype).itemsize * int(np.prod(shape))), dtype=dtype).reshape(shape)
    try:
        im = common.dn.to_chw(a, "bgr" if shape and shape[0] & 1 else "rgb")
    except TypeError as e:  # the documented answer to a dtype other than uint8
        assert "expected a uint8" in str(e)
        im = a.astype(np.float32)
    prepare(im, 1 + len(shape))


def check(data: bytes) -> None:
    b = common.Bytes(data)
    try:
        (from_array if b.byte() & 1 else from_file)(b)
        STATS.count("ok")
    except common.EXPECTED as e:
        STATS.count(type(e).__name__)


def seeds():
    import cv2

    rng = np.random.default_rng(0)
    img = (rng.random((5, 7, 3)) * 255).astype(np.uint8)
    return [b"\x00" + cv2.imencode(ext, img)[1].tobytes() for ext in (".png", ".jpg", ".bmp")] + [b"\x01\x03\x05\x03"]


if __name__ == "__main__":
    common.main("fuzz_image", check, seeds)
