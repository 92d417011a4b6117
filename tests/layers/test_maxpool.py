"""[maxpool]: forward against a NumPy implementation of spec §1.5/§3.5 (the window of output
(i, j) starts at (i*stride - padding//2, j*stride - padding//2); positions outside the image
are ignored), the separable inference path (rows, then columns) against the plain training
path, maxpool_depth, gradients, shapes of upstream cfgs."""
import numpy as np
import pytest

from _harness import (COST, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv, on_devices, outputs,
                      random_input, upstream_cfgs)


def reference_maxpool(x, size, stride, padding):
    n, c, h, w = x.shape
    out_h, out_w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = padding // 2
    out = np.empty((n, c, out_h, out_w), np.float32)
    for i in range(out_h):
        for j in range(out_w):
            y0, x0 = i * stride - off, j * stride - off
            window = x[:, :, max(y0, 0):max(y0 + size, 0), max(x0, 0):max(x0 + size, 0)]
            out[:, :, i, j] = window.reshape(n, c, -1).max(axis=2)
    return out


WINDOWS = [(2, 2, None, 13, 13), (2, 2, None, 8, 10), (2, 1, None, 7, 5), (3, 2, None, 9, 11),
           (5, 1, None, 19, 19), (9, 1, None, 19, 19), (13, 1, None, 19, 19), (3, 1, 0, 6, 7), (4, 3, 2, 11, 10)]


def pool_cfg(size, stride, padding):
    return f"[maxpool]\nsize={size}\nstride={stride}\n" + ("" if padding is None else f"padding={padding}\n")


@on_devices
@pytest.mark.parametrize("size,stride,padding,h,w", WINDOWS)
def test_forward_matches_numpy(tmp_path, device, size, stride, padding, h, w):
    net = build(tmp_path, pool_cfg(size, stride, padding), (3, h, w), batch=2, device=device)
    x = random_input(net, seed=size * 100 + h)
    ref = reference_maxpool(x, size, stride, size - 1 if padding is None else padding)
    np.testing.assert_array_equal(outputs(net, x)[0], ref)


@pytest.mark.parametrize("size,stride,padding,h,w", WINDOWS)
def test_separable_inference_matches_training_path(tmp_path, size, stride, padding, h, w):
    """Inference takes the separable max; a training forward takes the plain window scan that
    records argmax indexes. Both must give the same values."""
    body = pool_cfg(size, stride, padding)
    inference = build(tmp_path, body, (3, h, w), batch=1)
    training = build(tmp_path, body, (3, h, w), batch=1, train=True)
    x = random_input(inference, seed=h * 7 + w)
    training.backward(x, np.zeros((1, training.outputs), np.float32))
    np.testing.assert_array_equal(outputs(inference, x)[0], training.layer_output(0))


@on_devices
def test_depth(tmp_path, device):
    """maxpool_depth=1: output channel g is the max over input channels k = g (mod out_channels)."""
    net = build(tmp_path, "[maxpool]\nmaxpool_depth=1\nout_channels=3\n", (7, 4, 5), device=device)
    x = random_input(net)
    ref = np.stack([x[:, g::3].max(axis=1) for g in range(3)], axis=1)
    np.testing.assert_array_equal(outputs(net, x)[0], ref)


@pytest.mark.parametrize("pool", ["[maxpool]\nsize=2\nstride=2\n", "[maxpool]\nsize=3\nstride=1\n",
                                  "[maxpool]\nsize=2\nstride=1\n", "[maxpool]\nmaxpool_depth=1\nout_channels=2\n"],
                         ids=["2s2", "3s1", "2s1", "depth"])
def test_gradients(tmp_path, pool):
    net = build(tmp_path, pool + "\n" + conv(3) + COST, (4, 5, 5), train=True)
    # distinct, well-separated inputs: no perturbation changes which value is the maximum
    x = np.random.default_rng(0).permutation(np.linspace(-2, 2, net.batch * 100, dtype=np.float32))
    check_gradients(net, x=x.reshape((net.batch,) + net.input_shape))


@pytest.mark.parametrize("path", upstream_cfgs("maxpool"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "maxpool")


def test_2x2_training_routes_ties_to_the_first_maximum(tmp_path):
    """The vectorised 2x2 stride-2 training path records the first maximum in scan order (rows,
    then columns), as the generic window scan does: ties go to the same input."""
    net = build(tmp_path, "[maxpool]\nsize=2\nstride=2\n" + COST, (3, 4, 6), train=True)
    rng = np.random.default_rng(3)
    x = rng.integers(0, 3, (net.batch,) + net.input_shape).astype(np.float32)  # many ties
    y = rng.standard_normal((net.batch, net.outputs)).astype(np.float32)
    _, dx = net.backward(x, y, input_delta=True)
    d = net.layer_delta(0)
    n, c, h, w = x.shape
    ref = np.zeros_like(x)
    for i in range(h // 2):
        for j in range(w // 2):
            first = x[:, :, 2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(n, c, 4).argmax(axis=2)
            for b in range(n):
                for k in range(c):
                    ref[b, k, 2 * i + first[b, k] // 2, 2 * j + first[b, k] % 2] = d[b, k, i, j]
    assert np.any(ref) and np.count_nonzero(dx) == n * c * (h // 2) * (w // 2)
    np.testing.assert_array_equal(dx, ref)
