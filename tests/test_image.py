"""Image loading and darknet's resize (spec §5.1-5.3)."""
import numpy as np
import pytest

import darknetpy as dn
from conftest import read_f32


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
