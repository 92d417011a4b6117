"""[shortcut] (spec §1.5, §3.9): y = act(w0 x + sum_k w_k from_k) over the overlapping channel
prefix, with per_feature / per_channel weights and their relu / softmax normalisation, against
NumPy; the fused pre-normalised weights (upstream's max(w, 0.001)); gradients; shapes."""
import numpy as np
import pytest

from _harness import (COST, activate, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients,
                      conv, on_devices, outputs, param, random_input, upstream_cfgs)


def effective_weights(raw, n_inputs, channels, norm, floor):
    """(inputs, channels) weights: raw is one per input (per_feature) or per (input, channel)."""
    w = np.broadcast_to(raw.reshape(n_inputs, -1), (n_inputs, channels))
    if norm == "relu":
        w = np.maximum(w, floor)
        return w / (1e-4 + w.sum(axis=0))
    if norm == "softmax":
        e = np.exp(w - w.max(axis=0))
        return e / (1e-4 + e.sum(axis=0))
    return w


def reference_shortcut(prev, sources, weights, act):
    c = prev.shape[1]
    y = weights[0][None, :, None, None] * prev
    for k, src in enumerate(sources):
        m = min(c, src.shape[1])
        y[:, :m] += weights[k + 1][None, :m, None, None] * src[:, :m]
    return activate(y, act)


PREFIXES = {  # layers 0-2 before the shortcut; layer 2 (its input) has 4 channels
    "same": conv(4, act="tanh") + conv(4, act="logistic") + conv(4),
    "from-fewer": conv(2, act="tanh") + conv(6, act="logistic") + conv(4),
    "from-more": conv(7, act="tanh") + conv(3, act="logistic") + conv(4),
}


@on_devices
@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("keys", ["from=0", "from=0,1", "from=-3\nactivation=leaky",
                                  "from=0,1\nweights_type=per_feature",
                                  "from=1\nweights_type=per_channel\nactivation=swish",
                                  "from=0,1\nweights_type=per_feature\nweights_normalization=relu",
                                  "from=0\nweights_type=per_channel\nweights_normalization=softmax",
                                  "from=0\nweights_type=per_channel\nweights_normalization=relu"])
@pytest.mark.parametrize("fuse", [False, True], ids=["unfused", "fused"])
def test_forward_matches_numpy(tmp_path, device, prefix, keys, fuse):
    net = build(tmp_path, PREFIXES[prefix] + f"[shortcut]\n{keys}\n", (3, 4, 5), fuse=fuse, device=device)
    outs = outputs(net, random_input(net))
    opts = dict(line.split("=") for line in keys.split("\n"))
    sources = [outs[int(i) % 3] for i in opts["from"].split(",")]
    n_inputs = len(sources) + 1
    norm = opts.get("weights_normalization", "none")
    raw = param(net, 3, "weights") if "weights_type" in opts else np.ones(n_inputs)
    # fused networks normalise once, with upstream's relu floor of 0.001 (spec §3.9)
    weights = effective_weights(raw, n_inputs, 4, norm, 0.001 if fuse else 0.0)
    ref = reference_shortcut(outs[2].astype("f8"), sources, weights, opts.get("activation", "linear"))
    assert_matches(outs[3], ref, keys)


@pytest.mark.parametrize("extra", ["", "weights_type=per_feature", "weights_type=per_channel",
                                   "activation=swish", "activation=leaky\nweights_type=per_feature"])
def test_gradients(tmp_path, extra):
    body = conv(4, act="tanh") + conv(4, act="logistic") + f"[shortcut]\nfrom=0\n{extra}\n\n" + COST
    net = build(tmp_path, body, (2, 4, 4), train=True)
    if "weights_type" in extra:
        n = net.param(2, "weights").size
        net.set_param(2, "weights", np.linspace(0.5, 1.5, n))
    check_gradients(net)


def test_gradients_fewer_channels(tmp_path):
    body = conv(2, act="tanh") + conv(4, act="logistic") + "[shortcut]\nfrom=0\n\n" + COST
    check_gradients(build(tmp_path, body, (2, 4, 4), train=True))


@pytest.mark.parametrize("path", upstream_cfgs("shortcut"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "shortcut")
