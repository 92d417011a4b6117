"""[dropout] (spec §1.5, §3.9, §4.3): identity at inference; in training each value is either
dropped (0) or scaled by 1/(1 - p), with about p dropped; gradients with a fixed mask."""
import numpy as np
import pytest

from _harness import (COST, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv, on_devices, outputs,
                      random_input, upstream_cfgs)


@on_devices
def test_inference_is_identity(tmp_path, device):
    net = build(tmp_path, conv(4) + "[dropout]\nprobability=0.5\n", (2, 5, 5), device=device)
    x = random_input(net)
    before, after = outputs(net, x)
    np.testing.assert_array_equal(after, before)


@pytest.mark.parametrize("p", [0.2, 0.5])
def test_training_drops_and_scales(tmp_path, p):
    net = build(tmp_path, conv(8) + f"[dropout]\nprobability={p}\n", (3, 8, 8), batch=4, train=True, seed=1)
    x = random_input(net)
    net.seed(3)
    net.backward(x, np.zeros((4, net.outputs), np.float32))
    kept = outputs(build(tmp_path, conv(8), (3, 8, 8), batch=4, seed=1), x)[0]   # the same convolution
    dropped = net.layer_output(1)
    zero = dropped == 0
    np.testing.assert_allclose(dropped[~zero], kept[~zero] / (1 - p), rtol=1e-5)
    assert abs(zero.mean() - p) < 0.05


def test_gradients_with_a_fixed_mask(tmp_path):
    body = conv(6, act="linear") + "[dropout]\nprobability=0.4\n\n" + conv(2, act="tanh") + COST
    net = build(tmp_path, body, (2, 4, 4), train=True)
    grads = check_gradients(net)
    assert np.any(grads[(0, "weights")])
    # a different seed draws a different mask and so a different gradient
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    y = np.random.default_rng(0).standard_normal((2, net.outputs)).astype(np.float32)
    net.seed(7)
    _, a = net.backward(x, y, input_delta=True)
    net.seed(8)
    _, b = net.backward(x, y, input_delta=True)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("path", upstream_cfgs("dropout"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "dropout")
