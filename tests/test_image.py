"""Image loading and darknet's resize (spec §5.1-5.3)."""
import numpy as np
import pytest

import darknetpy as dn
from conftest import read_f32
from darknetpy.image import resize_min_center_crop


@pytest.mark.parametrize("name,size", [("astronaut", 224), ("astronaut", 416), ("chelsea", 224)])
def test_resize_reproduces_upstream(oracle, name, size):
    im = dn.load_image(oracle / "image" / f"{name}.png")
    ref = read_f32(oracle / "image" / f"{name}_{size}.f32", (3, size, size))
    out = dn.resize_image(im, size, size)
    ulp = np.abs(out.view(np.int32).astype(np.int64) - ref.view(np.int32).astype(np.int64))
    assert ulp.max() <= 1


def test_resize_last_row_quirk():
    # spec §5.2 [V]: a constant-1 image 10x2 -> 10x48 has a last row of ~1e-7
    out = dn.resize_image(np.ones((1, 2, 10), np.float32), 10, 48)
    assert abs(float(out[0, -1, 0])) < 1e-6
    assert np.allclose(out[0, :-1], 1, atol=1e-6)


def test_resize_min_and_center_crop():
    im = np.random.default_rng(0).random((3, 50, 80), dtype=np.float32)
    r = dn.resize_min(im, 20)
    assert r.shape == (3, 20, 32)
    assert dn.resize_min(im, 50) is not None and dn.resize_min(im, 50).shape == (3, 50, 80)
    c = dn.center_crop(r, 20, 20)
    np.testing.assert_array_equal(c, r[:, :, 6:26])
    edge = dn.crop_image(im, -2, 0, 4, 1)  # clamped coordinates replicate the edge
    np.testing.assert_array_equal(edge[:, 0, :3], np.repeat(im[:, 0, :1], 3, axis=1))


def test_to_chw_channel_order():
    bgr = np.zeros((2, 3, 3), np.uint8)
    bgr[..., 0] = 255  # blue
    chw = dn.to_chw(bgr, "bgr")
    assert chw.shape == (3, 2, 3) and chw[2].min() == 1 and chw[0].max() == 0
    np.testing.assert_array_equal(dn.to_chw(bgr[..., ::-1].copy(), "rgb"), chw)
    with pytest.raises(TypeError):
        dn.to_chw(bgr.astype(np.float64))


@pytest.mark.parametrize("shape", [(3, 40, 300), (3, 300, 41), (1, 97, 97), (3, 224, 224), (3, 500, 223)])
def test_resize_min_center_crop_equals_resize_then_crop(shape):
    im = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32)
    full = dn.center_crop(dn.resize_min(im, 224), 224, 200)
    np.testing.assert_array_equal(resize_min_center_crop(im, 224, 224, 200), full)


def test_a_very_long_image_is_cropped_before_it_is_resized():
    """1 x 20000 would resize to 224 x 4480000 (12 GB); only the crop is computed. Each output
    column is then darknet's vertical interpolation of the single source column (NumPy, float32)."""
    h, oh = 20000, 20000 * 224
    im = np.random.default_rng(0).random((3, h, 1), dtype=np.float32)
    out = resize_min_center_crop(im, 224, 224, 224)
    assert out.shape == (3, 224, 224)
    rows = np.arange(oh // 2 - 112, oh // 2 + 112)
    sy = rows.astype(np.float32) * (np.float32(h - 1) / np.float32(oh - 1))
    iy = sy.astype(np.int64)
    dy = sy - iy.astype(np.float32)
    col = im[:, :, 0]
    expect = (np.float32(1) - dy) * col[:, iy] + dy * col[:, iy + 1]
    np.testing.assert_array_equal(out, np.repeat(expect[:, :, None], 224, axis=2))
