"""[scale_channels] (spec §1.5, §3.9): y = act(in[c] * from[c, Y, X]), or with scale_wh=1
y = act(in[0, Y, X] * from[c, Y, X]); against NumPy; gradients; shapes of upstream cfgs."""
import pytest

from _harness import (COST, activate, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients,
                      conv, on_devices, outputs, random_input, upstream_cfgs)

SQUEEZE = conv(4, act="tanh") + "[avgpool]\n\n" + conv(4, size=1, pad=0, act="logistic")   # 4x1x1 per channel
SPATIAL = conv(4, act="tanh") + conv(1, size=1, pad=0, act="logistic")                     # 1 x h x w


@on_devices
@pytest.mark.parametrize("prefix,keys", [(SQUEEZE, "from=0"), (SQUEEZE, "from=-3\nactivation=leaky"),
                                         (SPATIAL, "from=0\nscale_wh=1"),
                                         (SPATIAL, "from=0\nscale_wh=1\nactivation=logistic")])
def test_forward_matches_numpy(tmp_path, device, prefix, keys):
    net = build(tmp_path, prefix + f"[scale_channels]\n{keys}\n", (3, 4, 5), device=device)
    outs = outputs(net, random_input(net))
    act = "leaky" if "leaky" in keys else "logistic" if "activation" in keys else "linear"
    assert_matches(outs[-1], activate(outs[-2].astype("f8") * outs[0], act), keys)


def test_gradients(tmp_path):
    check_gradients(build(tmp_path, SQUEEZE + "[scale_channels]\nfrom=0\n\n" + COST, (2, 4, 4), train=True))


def test_gradients_scale_wh(tmp_path):
    body = SPATIAL + "[scale_channels]\nfrom=0\nscale_wh=1\nactivation=logistic\n\n" + COST
    check_gradients(build(tmp_path, body, (2, 4, 4), train=True))


@pytest.mark.parametrize("path", upstream_cfgs("scale_channels"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "scale_channels")
