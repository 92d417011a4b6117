"""[local] (locally connected), inference: at every output position its own (filters, c, size,
size) kernel over the zero-padded input window plus one bias per output value, then the
activation; against NumPy; the .weights record is biases[outputs] then the kernels position by
position (upstream's order); inconsistent pad/size and training are refused; upstream shapes."""
import numpy as np
import pytest

import darknetpy as dn
from _harness import activate, assert_matches, assert_shapes_like_upstream, build, cfg_id, on_devices, outputs, \
    param, random_input, upstream_cfgs


def reference_local(x, weights, biases, filters, size, stride, pad, act):
    n, c, h, w = x.shape
    out_h = ((h - 1) if pad else (h - size)) // stride + 1
    out_w = ((w - 1) if pad else (w - size)) // stride + 1
    padded = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    kernels = weights.reshape(out_h, out_w, filters, c, size, size)
    out = biases.reshape(1, filters, out_h, out_w).repeat(n, axis=0)
    for i in range(out_h):
        for j in range(out_w):
            window = padded[:, :, i * stride:i * stride + size, j * stride:j * stride + size]
            out[:, :, i, j] += np.einsum("nchw,fchw->nf", window, kernels[i, j])
    return activate(out, act)


@on_devices
@pytest.mark.parametrize("size,stride,pad", [(3, 1, 1), (3, 2, 1), (2, 1, 0), (3, 2, 0), (1, 1, 0)])
@pytest.mark.parametrize("act", ["logistic", "leaky"])
def test_forward_matches_numpy(tmp_path, device, size, stride, pad, act):
    body = f"[local]\nfilters=4\nsize={size}\nstride={stride}\npad={pad}\nactivation={act}\n"
    net = build(tmp_path, body, (3, 5, 6), device=device)
    x = random_input(net)
    ref = reference_local(x, param(net, 0, "weights"), param(net, 0, "biases"), 4, size, stride, pad, act)
    got = outputs(net, x)[0]
    assert got.shape == ref.shape
    assert_matches(got, ref, f"local size={size} stride={stride} pad={pad}")


def test_default_activation_is_logistic(tmp_path):
    net = build(tmp_path, "[local]\nfilters=2\nsize=1\n", (1, 2, 2))
    assert net.layer_attrs(0)["activation"] == "logistic"


def test_weights_record_is_biases_then_kernels(tmp_path):
    """Saved as upstream reads them: the header, biases[outputs], then weights[positions][filters][c][k][k]."""
    net = build(tmp_path, "[local]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=linear\n", (2, 3, 4))
    biases, weights = param(net, 0, "biases"), param(net, 0, "weights")
    assert (biases.size, weights.size) == (2 * 3 * 4, 3 * 4 * 2 * 2 * 9)
    path = tmp_path / "local.weights"
    net.save_weights(path)
    raw = np.fromfile(path, dtype=np.float32)
    body = raw[-(biases.size + weights.size):]
    np.testing.assert_array_equal(body[:biases.size], biases.astype(np.float32))
    np.testing.assert_array_equal(body[biases.size:], weights.astype(np.float32))
    other = build(tmp_path, "[local]\nfilters=2\nsize=3\nstride=1\npad=1\nactivation=linear\n", (2, 3, 4), seed=99)
    other.load_weights(path)
    x = random_input(net)
    np.testing.assert_array_equal(outputs(other, x)[0], outputs(net, x)[0])


def test_pad_that_disagrees_with_size_is_refused(tmp_path):
    with pytest.raises(dn.CfgError, match=r"pad=1 with size=5"):
        build(tmp_path, "[local]\nfilters=2\nsize=5\npad=1\n", (1, 6, 6))


def test_training_is_refused(tmp_path):
    with pytest.raises(dn.CfgError, match=r"training a \[local\] layer"):
        build(tmp_path, "[local]\nfilters=2\nsize=1\n", (1, 4, 4), train=True)


@pytest.mark.parametrize("path", upstream_cfgs("local", limit=1), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "local")
