"""[local_avgpool] (spec §1.5, §3.5): the maxpool window rule, the mean over the window
positions inside the image; forward against NumPy, gradients."""
import numpy as np
import pytest

from _harness import (COST, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv,
                      on_devices, outputs, random_input, upstream_cfgs)


def reference_local_avgpool(x, size, stride, padding):
    n, c, h, w = x.shape
    out_h, out_w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = padding // 2
    out = np.empty((n, c, out_h, out_w))
    for i in range(out_h):
        for j in range(out_w):
            y0, x0 = i * stride - off, j * stride - off
            window = x[:, :, max(y0, 0):max(y0 + size, 0), max(x0, 0):max(x0 + size, 0)]
            out[:, :, i, j] = window.reshape(n, c, -1).mean(axis=2, dtype="f8")
    return out


@on_devices
@pytest.mark.parametrize("size,stride,padding,h,w", [
    (2, 2, None, 7, 8), (3, 2, None, 9, 11), (2, 1, None, 5, 6), (3, 1, None, 6, 6), (5, 1, 2, 7, 9), (3, 3, 0, 9, 10),
])
def test_forward_matches_numpy(tmp_path, device, size, stride, padding, h, w):
    body = f"[local_avgpool]\nsize={size}\nstride={stride}\n" + ("" if padding is None else f"padding={padding}\n")
    net = build(tmp_path, body, (3, h, w), device=device)
    x = random_input(net)
    ref = reference_local_avgpool(x, size, stride, size - 1 if padding is None else padding)
    assert_matches(outputs(net, x)[0], ref, body)


@pytest.mark.parametrize("pool", ["size=3\nstride=2", "size=2\nstride=1"])
def test_gradients(tmp_path, pool):
    net = build(tmp_path, f"[local_avgpool]\n{pool}\n\n" + conv(3) + COST, (4, 5, 5), train=True)
    check_gradients(net)


@pytest.mark.parametrize("path", upstream_cfgs("local_avgpool"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "local_avgpool")
