"""[connected] (spec §3.6): y = act(W x (+ batch norm with rolling statistics) + bias) on the
flattened CHW input, against NumPy, unfused and fused; gradients; shapes of upstream cfgs."""
import numpy as np
import pytest

from _harness import (COST, activate, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients,
                      on_devices, outputs, param, random_input, upstream_cfgs)


@on_devices
@pytest.mark.parametrize("bn", [0, 1])
@pytest.mark.parametrize("act", ["linear", "tanh", "relu6", "mish"])
@pytest.mark.parametrize("fuse", [False, True], ids=["unfused", "fused"])
def test_forward_matches_numpy(tmp_path, device, bn, act, fuse):
    net = build(tmp_path, f"[connected]\noutput=5\nactivation={act}\nbatch_normalize={bn}\n", (2, 3, 4), batch=3,
                fuse=fuse, device=device)
    x = random_input(net)
    z = x.reshape(3, -1).astype("f8") @ param(net, 0, "weights", (5, 24)).T
    if bn:
        mean, var = param(net, 0, "rolling_mean"), param(net, 0, "rolling_variance")
        z = param(net, 0, "scales") * (z - mean) / np.sqrt(var + 1e-5)
    ref = activate(z + param(net, 0, "biases"), act)
    assert_matches(outputs(net, x)[0], ref, f"connected {act} bn={bn}", tol=1e-5 if not fuse else 1e-4)


@pytest.mark.parametrize("bn", [0, 1])
def test_gradients(tmp_path, bn):
    body = (f"[connected]\noutput=5\nactivation=tanh\nbatch_normalize={bn}\n\n"
            f"[connected]\noutput=3\nactivation=linear\n\n" + COST)
    check_gradients(build(tmp_path, body, (2, 3, 3), batch=4, train=True))


@pytest.mark.parametrize("path", upstream_cfgs("connected"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "connected")
