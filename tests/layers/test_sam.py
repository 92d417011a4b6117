"""[sam] (spec §1.5, §3.9): y = act(in * from) element-wise, against NumPy; gradients; shapes."""
import pytest

from _harness import (COST, activate, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients,
                      conv, on_devices, outputs, random_input, upstream_cfgs)


@on_devices
@pytest.mark.parametrize("keys,act", [("from=0", "linear"), ("from=-2\nactivation=logistic", "logistic")])
def test_forward_matches_numpy(tmp_path, device, keys, act):
    net = build(tmp_path, conv(4, act="tanh") + conv(4, act="logistic") + f"[sam]\n{keys}\n", (3, 4, 5),
                device=device)
    outs = outputs(net, random_input(net))
    assert_matches(outs[2], activate(outs[1].astype("f8") * outs[0], act), keys)


def test_gradients(tmp_path):
    body = conv(4, act="tanh") + conv(4, act="logistic") + "[sam]\nfrom=0\n\n" + COST
    check_gradients(build(tmp_path, body, (2, 4, 4), train=True))


@pytest.mark.parametrize("path", upstream_cfgs("sam"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "sam")
