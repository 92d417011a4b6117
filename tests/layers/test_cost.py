"""[cost] (spec §3.8, §4.2): the reported error and the delta of sse, smooth, masked and
scale against NumPy; gradients through finite differences; shapes of upstream cfgs."""
import numpy as np
import pytest

from _harness import assert_shapes_like_upstream, build, cfg_id, check_gradients, upstream_cfgs


def reference_cost(x, t, kind, scale):
    """(error, input delta): d = t - x; sse: d^2, d; smooth beyond |d| = 1: 2|d| - 1, sign(d);
    masked: no error and no delta where t = -1234; the delta is multiplied by ``scale``."""
    d = t.astype(np.float64) - x
    err, delta = d * d, d
    if kind == "smooth":
        err, delta = np.where(abs(d) < 1, err, 2 * abs(d) - 1), np.where(abs(d) < 1, d, np.sign(d))
    if kind == "masked":
        err, delta = np.where(t == -1234, 0, err), np.where(t == -1234, 0, delta)
    return err.sum(), scale * delta


@pytest.mark.parametrize("kind,scale", [("sse", 1.0), ("smooth", 1.0), ("sse", 2.5), ("masked", 1.0)])
def test_error_and_delta_match_numpy(tmp_path, kind, scale):
    body = f"[activation]\nactivation=linear\n\n[cost]\ntype={kind}\nscale={scale}\n"
    net = build(tmp_path, body, (2, 2, 3), batch=3, train=True)
    rng = np.random.default_rng(4)
    x = rng.standard_normal((3, 2, 2, 3)).astype(np.float32)
    y = (x.reshape(3, -1) + 2 * rng.standard_normal((3, 12))).astype(np.float32)  # |d| on both sides of 1
    y[0, :5] = -1234
    loss, dx = net.backward(x, y, input_delta=True)
    err, delta = reference_cost(x.reshape(3, -1), y, kind, scale)
    assert loss == pytest.approx(err, rel=1e-5)
    np.testing.assert_allclose(dx.reshape(3, -1), delta, atol=1e-5)


@pytest.mark.parametrize("cost", ["type=sse", "type=smooth", "type=sse\nscale=2.5", "type=masked"])
def test_gradients(tmp_path, cost):
    net = build(tmp_path, "[connected]\noutput=6\nactivation=linear\n\n" + f"[cost]\n{cost}\n", (2, 2, 2),
                batch=3, train=True)
    rng = np.random.default_rng(4)
    y = (3 * rng.standard_normal((3, 6))).astype(np.float32)  # |t - x| on both sides of 1 for smooth
    if "masked" in cost:
        y[0, :3] = -1234
    check_gradients(net, y=y, factor=0.5 * (2.5 if "scale" in cost else 1.0))


@pytest.mark.parametrize("path", upstream_cfgs("cost"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "cost")
