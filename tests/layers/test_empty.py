"""[empty] / [silence] (spec §1.5): the identity, in place; the delta passes through."""
import numpy as np
import pytest

from _harness import COST, build, check_gradients, conv, on_devices, outputs, random_input


@on_devices
@pytest.mark.parametrize("section", ["empty", "silence"])
def test_forward_is_identity(tmp_path, device, section):
    net = build(tmp_path, conv(3, act="tanh") + f"[{section}]\n", (2, 4, 5), device=device)
    before, after = outputs(net, random_input(net))
    np.testing.assert_array_equal(after, before)


def test_gradients(tmp_path):
    check_gradients(build(tmp_path, conv(3, act="tanh") + "[empty]\n\n" + conv(2) + COST, (2, 4, 4), train=True))
