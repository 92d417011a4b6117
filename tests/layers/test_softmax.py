"""[softmax] (spec §3.7, §4.2, §4.3): forward with groups and temperature against NumPy, the
cross-entropy gradient and cost, label smoothing, the double delta of softmax + [cost]."""
import numpy as np
import pytest

from _harness import (COST, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv,
                      on_devices, outputs, random_input, upstream_cfgs)


def softmax(logits, groups=1, temperature=1.0):
    """Per sample, a softmax over each of ``groups`` consecutive blocks of the flat vector."""
    z = np.asarray(logits, np.float64).reshape(len(logits), groups, -1) / temperature
    e = np.exp(z - z.max(axis=2, keepdims=True))
    return (e / e.sum(axis=2, keepdims=True)).reshape(len(logits), -1)


@on_devices
@pytest.mark.parametrize("groups,temperature", [(1, 1.0), (3, 1.0), (1, 2.5), (4, 0.5)])
def test_forward_matches_numpy(tmp_path, device, groups, temperature):
    net = build(tmp_path, f"[softmax]\ngroups={groups}\ntemperature={temperature}\n", (3, 2, 4), device=device)
    x = random_input(net, scale=3.0)
    assert_matches(outputs(net, x)[0], softmax(x.reshape(len(x), -1), groups, temperature), "softmax")


@pytest.mark.parametrize("groups", [1, 2])
def test_cross_entropy_gradients(tmp_path, groups):
    net = build(tmp_path, conv(4, size=1, pad=0) + f"[avgpool]\n\n[softmax]\ngroups={groups}\n", (2, 3, 3),
                batch=3, train=True)
    rng = np.random.default_rng(1)
    y = np.zeros((net.batch, net.outputs), np.float32)
    n = net.outputs // groups
    for b in range(net.batch):  # one-hot per group: the CE is -sum t ln p
        for g in range(groups):
            y[b, g * n + rng.integers(n)] = 1
    check_gradients(net, y=y)


def test_label_smoothing(tmp_path):
    """With smoothed truth the delta is still t - p (the gradient of -sum t ln p), while the
    reported error sums -ln p over every class with t > 0, unweighted (spec §4.2)."""
    net = build(tmp_path, "[avgpool]\n\n[softmax]\n", (4, 2, 2), batch=2, train=True)
    x = np.random.default_rng(2).standard_normal((2, 4, 2, 2)).astype(np.float32)
    y = np.full((2, 4), 0.1 / 3, np.float32)
    y[:, 1] = 0.9
    loss, dx = net.backward(x, y, input_delta=True)
    p = softmax(x.mean(axis=(2, 3), dtype=np.float64))
    np.testing.assert_allclose(dx, np.broadcast_to(((y - p) / 4)[:, :, None, None], dx.shape), atol=1e-6)
    assert loss == pytest.approx(-np.log(p).sum(), rel=1e-5)


def test_softmax_then_cost_is_twice_ce_delta(tmp_path):
    """darknet adds the SSE delta t - p to the softmax delta without the softmax
    Jacobian, so the logits receive 2 (t - p) (spec §4.3)."""
    net = build(tmp_path, "[avgpool]\n\n[softmax]\n\n" + COST, (4, 2, 2), batch=2, train=True)
    x = np.random.default_rng(3).standard_normal((2, 4, 2, 2)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[[1, 3]]
    loss, dx = net.backward(x, y, input_delta=True)
    p = softmax(x.mean(axis=(2, 3), dtype=np.float64))
    expected = np.repeat(2 * (y - p)[:, :, None, None] / 4, 4, axis=2).reshape(2, 4, 2, 2)
    np.testing.assert_allclose(dx, expected, atol=1e-6)
    ce, sse = -np.log(p[y == 1]).sum(), ((y - p) ** 2).sum()
    assert loss == pytest.approx((ce + sse) / 2, rel=1e-5)


@pytest.mark.parametrize("path", upstream_cfgs("softmax"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "softmax")
