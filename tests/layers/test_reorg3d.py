"""[reorg3d]: space-to-depth by ``stride`` in the order documented in layer_reorg3d.c,
out[b, (dy*s + dx)*c + ci, y, x] = in[b, ci, y*s + dy, x*s + dx] (not checked against
upstream); against NumPy; gradients; shapes of upstream cfgs."""
import numpy as np
import pytest

from _harness import (COST, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv, on_devices, outputs,
                      random_input, upstream_cfgs)


def reference_reorg3d(x, s):
    n, c, h, w = x.shape
    blocks = x.reshape(n, c, h // s, s, w // s, s)            # n, ci, y, dy, x, dx
    return blocks.transpose(0, 3, 5, 1, 2, 4).reshape(n, s * s * c, h // s, w // s)


@on_devices
@pytest.mark.parametrize("stride,shape", [(2, (3, 4, 6)), (3, (2, 6, 9)), (1, (2, 3, 3))])
def test_forward_matches_numpy(tmp_path, device, stride, shape):
    net = build(tmp_path, f"[reorg3d]\nstride={stride}\n", shape, device=device)
    x = random_input(net)
    np.testing.assert_array_equal(outputs(net, x)[0], reference_reorg3d(x, stride))


def test_gradients(tmp_path):
    check_gradients(build(tmp_path, conv(3) + "[reorg3d]\nstride=2\n\n" + conv(2, size=1, pad=0) + COST, (2, 4, 4),
                          train=True))


@pytest.mark.parametrize("path", upstream_cfgs("reorg3d"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "reorg3d")
