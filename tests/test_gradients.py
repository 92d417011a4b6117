"""Every layer's backward against central finite differences (issue 3).

Each case is a tiny network ending in a loss layer. ``Network.backward`` runs one
training-mode forward/backward of a mini-batch and returns the cost and the input
delta; ``param_delta`` gives each parameter's delta. Deltas are darknet's NEGATIVE
gradients of the loss whose cost is reported: CE for [softmax], and half the
reported error for [cost] (delta = t - x is the gradient of (t - x)^2 / 2), times
the cost's ``scale``. The numeric side perturbs one float32 value at a time and
takes differences of the double-accumulated cost.
"""
import numpy as np
import pytest

import darknetpy as dn

EPS = 1e-3
PARAMS = ("weights", "biases", "scales")


def build(tmp_path, body, shape=(3, 6, 6), batch=2, name="g.cfg"):
    c, h, w = shape
    cfg = tmp_path / name
    cfg.write_text(f"[net]\nbatch={batch}\nsubdivisions=1\nwidth={w}\nheight={h}\nchannels={c}\n"
                   f"learning_rate=0\nmomentum=0\ndecay=0\n\n{body}")
    net = dn.Network(cfg, batch=None)
    rng = np.random.default_rng(len(body))
    for i in range(len(net.layers)):
        for name in ("weights", "biases", "scales"):
            try:
                v = net.param(i, name)
            except dn.InputError:
                continue
            # spread BN scales and biases away from their neutral init so every term matters
            scale = 0.5 if name == "weights" else 0.3
            base = 1.0 if name == "scales" else 0.0
            net.set_param(i, name, base + scale * rng.standard_normal(v.size))
    return net


def cost_scale(net):
    """Loss = factor * reported cost (see the module docstring)."""
    return 1.0 if net.layers[-1].type == "softmax" else 0.5


def trainable(net):
    for i in range(len(net.layers)):
        for name in PARAMS:
            try:
                d = net.param_delta(i, name)
            except dn.InputError:
                continue
            if d is not None:
                yield i, name


def numeric(loss_fn, values, setter, idx, eps):
    out = []
    for i in idx:
        v = values.copy()
        v.flat[i] += eps
        setter(v)
        up = loss_fn()
        v.flat[i] -= 2 * eps
        setter(v)
        down = loss_fn()
        out.append((up - down) / (2 * eps))
    setter(values)
    return np.array(out)


def assert_close(analytic, num, what, atol, rtol=2e-2):
    scale = max(np.abs(analytic).max(), np.abs(num).max(), 1e-3)
    err = np.abs(analytic - num).max()
    assert err <= rtol * scale + atol, f"{what}: analytic {analytic} vs numeric {num} (max err {err:.3g})"


def check(net, x=None, y=None, n_idx=10, seed=0, factor=None, eps=EPS):
    """Compare analytic and numeric gradients for the input and every trainable array;
    the loss is ``factor`` (default: :func:`cost_scale`) times the reported cost. Kinked
    functions take a smaller ``eps`` so that few perturbations cross a kink."""
    rng = np.random.default_rng(seed)
    if x is None:
        x = rng.standard_normal((net.batch,) + net.input_shape).astype(np.float32)
    if y is None:
        y = rng.standard_normal((net.batch, net.outputs)).astype(np.float32)
    k = cost_scale(net) if factor is None else factor

    def loss():
        net.seed(7)  # the same dropout mask on every evaluation
        return k * net.backward(x, y)[0]

    net.seed(7)
    loss0, dx = net.backward(x, y, input_delta=True)
    # the noise floor of a float32 forward: a few ulps of the loss over the step
    atol = 2e-3 + 4 * 6e-8 * abs(k * loss0) / eps
    grads = {key: -net.param_delta(*key) for key in trainable(net)}
    idx = rng.choice(x.size, min(n_idx, x.size), replace=False)
    x = x.copy()

    def set_x(v):
        x[...] = v
    num = numeric(loss, x.copy(), set_x, idx, eps)
    assert_close(-dx.ravel()[idx], num, "input", atol)
    for (layer, name), g in grads.items():
        values = net.param(layer, name)
        idx = rng.choice(values.size, min(n_idx, values.size), replace=False)
        num = numeric(loss, values, lambda v: net.set_param(layer, name, v), idx, eps)
        assert_close(g[idx], num, f"layer {layer} {name}", atol)
    return grads


COST = "[cost]\ntype=sse\n"


def conv(filters, size=3, stride=1, pad=1, act="linear", extra=""):
    return (f"[convolutional]\nfilters={filters}\nsize={size}\nstride={stride}\npad={pad}\n"
            f"activation={act}\n{extra}\n")


@pytest.mark.parametrize("body,shape", [
    (conv(4, act="logistic"), (3, 6, 6)),
    (conv(4, stride=2, act="tanh", extra="groups=2"), (4, 7, 7)),
    (conv(6, act="linear", extra="groups=3\nstride_x=2\nstride_y=1"), (3, 6, 6)),
    (conv(3, act="logistic", extra="dilation=2"), (2, 7, 7)),
    (conv(3, size=1, pad=0, act="linear"), (4, 5, 5)),
    (conv(4, size=3, pad=0, act="linear", extra="padding=2"), (2, 5, 5)),
], ids=["plain", "groups-stride", "depthwise-stride_xy", "dilation", "1x1", "explicit-padding"])
def test_convolutional(tmp_path, body, shape):
    check(build(tmp_path, body + COST, shape))


@pytest.mark.parametrize("act", ["linear", "mish", "swish", "logistic"])
def test_convolutional_batchnorm_training(tmp_path, act):
    body = conv(4, act=act, extra="batch_normalize=1") + conv(3, act="linear") + COST
    net = build(tmp_path, body, (3, 5, 5), batch=3)
    check(net, n_idx=12)


@pytest.mark.parametrize("bn", [0, 1])
def test_connected(tmp_path, bn):
    body = (f"[connected]\noutput=5\nactivation=tanh\nbatch_normalize={bn}\n\n"
            f"[connected]\noutput=3\nactivation=linear\n\n" + COST)
    check(build(tmp_path, body, (2, 3, 3), batch=4))


@pytest.mark.parametrize("pool", [
    "[maxpool]\nsize=2\nstride=2\n", "[maxpool]\nsize=3\nstride=1\n", "[maxpool]\nsize=2\nstride=1\n",
    "[maxpool]\nmaxpool_depth=1\nout_channels=2\n",
    "[avgpool]\n", "[local_avgpool]\nsize=3\nstride=2\n", "[local_avgpool]\nsize=2\nstride=1\n",
], ids=["max2s2", "max3s1", "max2s1", "max-depth", "avg", "local_avg3s2", "local_avg2s1"])
def test_pooling(tmp_path, pool):
    net = build(tmp_path, pool + "\n" + conv(3) + COST, (4, 5, 5))
    # distinct, well-separated inputs: no perturbation changes which value is the maximum
    x = np.random.default_rng(0).permutation(np.linspace(-2, 2, net.batch * 100, dtype=np.float32))
    check(net, x=x.reshape((net.batch,) + net.input_shape))


@pytest.mark.parametrize("groups", [1, 2])
def test_softmax_cross_entropy(tmp_path, groups):
    net = build(tmp_path, conv(4, size=1, pad=0) + f"[avgpool]\n\n[softmax]\ngroups={groups}\n", (2, 3, 3), batch=3)
    rng = np.random.default_rng(1)
    y = np.zeros((net.batch, net.outputs), np.float32)
    for b in range(net.batch):  # one-hot per group: the CE is -sum t ln p
        for g in range(groups):
            n = net.outputs // groups
            y[b, g * n + rng.integers(n)] = 1
    check(net, y=y)


def softmax(logits):
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_softmax_label_smoothing(tmp_path):
    """With smoothed truth the delta is still t - p (the gradient of -sum t ln p), while the
    reported error sums -ln p over every class with t > 0, unweighted (spec §4.2)."""
    net = build(tmp_path, "[avgpool]\n\n[softmax]\n", (4, 2, 2), batch=2)
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
    net = build(tmp_path, "[avgpool]\n\n[softmax]\n\n" + COST, (4, 2, 2), batch=2)
    x = np.random.default_rng(3).standard_normal((2, 4, 2, 2)).astype(np.float32)
    y = np.eye(4, dtype=np.float32)[[1, 3]]
    loss, dx = net.backward(x, y, input_delta=True)
    p = softmax(x.mean(axis=(2, 3), dtype=np.float64))
    expected = np.repeat(2 * (y - p)[:, :, None, None] / 4, 4, axis=2).reshape(2, 4, 2, 2)
    np.testing.assert_allclose(dx, expected, atol=1e-6)
    ce, sse = -np.log(p[y == 1]).sum(), ((y - p) ** 2).sum()
    assert loss == pytest.approx((ce + sse) / 2, rel=1e-5)


@pytest.mark.parametrize("cost", ["type=sse", "type=smooth", "type=sse\nscale=2.5", "type=masked"])
def test_cost_types(tmp_path, cost):
    net = build(tmp_path, "[connected]\noutput=6\nactivation=linear\n\n" + f"[cost]\n{cost}\n", (2, 2, 2), batch=3)
    rng = np.random.default_rng(4)
    y = (3 * rng.standard_normal((3, 6))).astype(np.float32)  # |t - x| on both sides of 1 for smooth
    if "masked" in cost:
        y[0, :3] = -1234
    check(net, y=y, factor=0.5 * (2.5 if "scale" in cost else 1.0))


def test_route_with_groups(tmp_path):
    body = (conv(4, act="logistic") + conv(2, act="tanh") + "[route]\nlayers=0,1\n\n"
            "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n" + conv(3, size=1, pad=0) + COST)
    check(build(tmp_path, body, (2, 4, 4)))


@pytest.mark.parametrize("extra", ["", "weights_type=per_feature", "weights_type=per_channel",
                                   "activation=swish", "activation=leaky\nweights_type=per_feature"])
def test_shortcut(tmp_path, extra):
    body = conv(4, act="tanh") + conv(4, act="logistic") + f"[shortcut]\nfrom=0\n{extra}\n\n" + COST
    net = build(tmp_path, body, (2, 4, 4))
    if "weights_type" in extra:
        n = net.param(2, "weights").size
        net.set_param(2, "weights", np.linspace(0.5, 1.5, n))
    check(net)


def test_shortcut_fewer_channels(tmp_path):
    body = conv(2, act="tanh") + conv(4, act="logistic") + "[shortcut]\nfrom=0\n\n" + COST
    check(build(tmp_path, body, (2, 4, 4)))


@pytest.mark.parametrize("up", ["stride=2", "stride=2\nscale=0.5", "stride=-2", "stride=-2\nscale=0.25"])
def test_upsample(tmp_path, up):
    check(build(tmp_path, conv(3) + f"[upsample]\n{up}\n\n" + COST, (2, 4, 4)))


def test_scale_channels(tmp_path):
    body = (conv(4, act="tanh") + "[avgpool]\n\n" + conv(4, size=1, pad=0, act="logistic") +
            "[scale_channels]\nfrom=0\n\n" + COST)
    check(build(tmp_path, body, (2, 4, 4)))


def test_scale_channels_wh(tmp_path):
    body = (conv(4, act="tanh") + conv(1, size=1, pad=0, act="logistic") +
            "[scale_channels]\nfrom=0\nscale_wh=1\nactivation=logistic\n\n" + COST)
    check(build(tmp_path, body, (2, 4, 4)))


def test_sam(tmp_path):
    body = conv(4, act="tanh") + conv(4, act="logistic") + "[sam]\nfrom=0\n\n" + COST
    check(build(tmp_path, body, (2, 4, 4)))


def test_batchnorm_layer(tmp_path):
    body = conv(3, act="linear") + "[batchnorm]\n\n" + conv(2, act="linear") + COST
    check(build(tmp_path, body, (2, 4, 4), batch=3), n_idx=12)


ACTIVATIONS = ["logistic", "loggy", "relu", "relu6", "leaky", "revleaky", "relie", "ramp", "tanh", "elu",
               "selu", "gelu", "plse", "hardtan", "lhtan", "swish", "mish", "hard_mish",
               "normalize_channels", "normalize_channels_softmax", "normalize_channels_softmax_maxval"]


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activation_layer(tmp_path, act):
    net = build(tmp_path, conv(3, act="linear") + f"[activation]\nactivation={act}\n\n" + COST, (2, 4, 4))
    check(net, seed=5, eps=1e-4)


@pytest.mark.parametrize("act", ["leaky", "relu6", "selu", "gelu", "hard_mish", "normalize_channels"])
def test_activation_in_convolution(tmp_path, act):
    check(build(tmp_path, conv(3, act=act) + conv(2, size=1, pad=0) + COST, (2, 4, 4)), seed=6, eps=1e-4)


def test_dropout_fixed_mask(tmp_path):
    body = conv(6, act="linear") + "[dropout]\nprobability=0.4\n\n" + conv(2, act="tanh") + COST
    net = build(tmp_path, body, (2, 4, 4))
    grads = check(net)
    assert np.any(grads[(0, "weights")])
    # a different seed draws a different mask and so a different gradient
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4)).astype(np.float32)
    y = np.random.default_rng(0).standard_normal((2, net.outputs)).astype(np.float32)
    net.seed(7)
    _, a = net.backward(x, y, input_delta=True)
    net.seed(8)
    _, b = net.backward(x, y, input_delta=True)
    assert not np.allclose(a, b)


def test_shared_weights(tmp_path):
    """share_index: both uses of the weights add to the owner's delta."""
    body = conv(3, act="tanh") + conv(3, act="logistic", extra="share_index=0") + COST
    net = build(tmp_path, body, (3, 4, 4))
    grads = check(net)
    assert set(grads) == {(0, "weights"), (0, "biases")}


def test_stopbackward_freezes_earlier_layers(tmp_path):
    body = conv(3, act="tanh") + conv(3, act="tanh", extra="stopbackward=1") + conv(2) + COST
    net = build(tmp_path, body, (2, 4, 4))
    x = np.ones((2, 2, 4, 4), np.float32)
    y = np.zeros((2, net.outputs), np.float32)
    _, dx = net.backward(x, y, input_delta=True)
    assert net.param_delta(0, "weights") is None  # frozen: no training buffers
    assert np.all(dx == 0)
    assert np.any(net.param_delta(2, "weights"))
