"""[reorg] (the old, stride-based reorg of YOLOv2): the flat sample is permuted with
upstream's reorg index formula over the input dims (w, h, c), gathered forward (or scattered
with reverse=1); against a NumPy version of that formula; gradients; shapes of upstream cfgs."""
import numpy as np
import pytest

from _harness import (COST, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv, on_devices, outputs,
                      random_input, upstream_cfgs)


def wide_positions(c, h, w, s):
    """For each (k, j, i) of a (c, h, w) block, its flat position in the (c/s^2, h*s, w*s) view."""
    k, j, i = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
    oc = c // (s * s)
    off = k // oc
    return ((i * s + off % s) + w * s * ((j * s + off // s) + h * s * (k % oc))).ravel()


def reference_reorg(x, s, reverse):
    n, c, h, w = x.shape
    flat = x.reshape(n, -1)
    out = np.empty_like(flat)
    wide = wide_positions(c, h, w, s)
    if reverse:
        out[:, wide] = flat
    else:
        out[:] = flat[:, wide]
    return out


@on_devices
@pytest.mark.parametrize("reverse", [0, 1])
@pytest.mark.parametrize("stride,shape", [(2, (8, 4, 6)), (2, (4, 2, 2))])
def test_forward_matches_numpy(tmp_path, device, stride, shape, reverse):
    net = build(tmp_path, f"[reorg]\nstride={stride}\nreverse={reverse}\n", shape, device=device)
    x = random_input(net)
    got = outputs(net, x)[0].reshape(len(x), -1)
    np.testing.assert_array_equal(got, reference_reorg(x, stride, reverse))


def test_gradients(tmp_path):
    check_gradients(build(tmp_path, conv(4) + "[reorg]\nstride=2\n\n" + conv(2, size=1, pad=0) + COST, (2, 4, 4),
                          train=True))


@pytest.mark.parametrize("path", upstream_cfgs("reorg"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "reorg")
