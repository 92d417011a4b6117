"""[crop], inference: the centre window (offsets floor((h - ch) / 2), floor((w - cw) / 2)) of
every channel, mapped by 2x - 1 unless noadjust=1; against NumPy; training and windows larger
than the input are refused; shapes of upstream cfgs."""
import numpy as np
import pytest

import darknetpy as dn
from _harness import assert_matches, assert_shapes_like_upstream, build, cfg_id, on_devices, outputs, \
    random_input, upstream_cfgs


def reference_crop(x, ch, cw, noadjust):
    _, _, h, w = x.shape
    dy, dx = (h - ch) // 2, (w - cw) // 2
    window = x.astype(np.float64)[:, :, dy:dy + ch, dx:dx + cw]
    return window if noadjust else 2 * window - 1


@on_devices
@pytest.mark.parametrize("noadjust", [0, 1])
@pytest.mark.parametrize("ch,cw", [(3, 4), (6, 7), (1, 2)])
def test_forward_matches_numpy(tmp_path, device, noadjust, ch, cw):
    body = f"[crop]\ncrop_height={ch}\ncrop_width={cw}\nflip=1\nangle=0\nnoadjust={noadjust}\n"
    net = build(tmp_path, body, (2, 6, 7), device=device)
    x = random_input(net)
    got = outputs(net, x)[0]
    assert got.shape == (2, 2, ch, cw)
    assert_matches(got, reference_crop(x, ch, cw, noadjust), "crop")


def test_training_is_refused(tmp_path):
    with pytest.raises(dn.CfgError, match=r"training through a \[crop\]"):
        build(tmp_path, "[crop]\ncrop_height=2\ncrop_width=2\n", (1, 4, 4), train=True)


def test_window_larger_than_the_input_is_refused(tmp_path):
    with pytest.raises(dn.CfgError, match=r"crop_height=5 and crop_width=2 must be between 1 and the input size"):
        build(tmp_path, "[crop]\ncrop_height=5\ncrop_width=2\n", (1, 4, 4))


@pytest.mark.parametrize("path", upstream_cfgs("crop"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "crop")
