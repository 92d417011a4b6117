"""[activation] (spec §3.4): every activation of darknet against the NumPy definitions in
_harness.activate (computed correctly everywhere, unlike upstream's CPU path); gradients."""
import numpy as np
import pytest

from _harness import (ACTIVATIONS, COST, activate, assert_matches, build, check_gradients, conv, on_devices,
                      outputs, random_input)


@on_devices
@pytest.mark.parametrize("act", ACTIVATIONS)
def test_forward_matches_numpy(tmp_path, device, act):
    net = build(tmp_path, f"[activation]\nactivation={act}\n", (3, 4, 5), device=device)
    x = random_input(net, scale=3.0)   # both sides of every kink (+-1, +-2, +-4, 6)
    assert_matches(outputs(net, x)[0], activate(x, act), act)


@pytest.mark.parametrize("act", [a for a in ACTIVATIONS if a != "linear"])
def test_gradients(tmp_path, act):
    net = build(tmp_path, conv(3, act="linear") + f"[activation]\nactivation={act}\n\n" + COST, (2, 4, 4),
                train=True)
    check_gradients(net, seed=5, eps=1e-4)


@on_devices
@pytest.mark.parametrize("act", ["leaky", "logistic", "swish", "mish", "tanh"])
def test_vectorised_kinds_over_a_wide_range(tmp_path, device, act):
    """The kinds with a vectorised exp, from deep saturation to overflow territory of exp."""
    net = build(tmp_path, f"[activation]\nactivation={act}\n", (1, 1, 2001), batch=1, device=device)
    x = np.linspace(-100, 100, 2001, dtype=np.float32).reshape(1, 1, 1, -1)
    got, ref = outputs(net, x)[0].astype("f8"), activate(x, act)
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6, err_msg=act)
