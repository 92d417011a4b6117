"""The one harness behind tests/layers/test_<kind>.py.

Each layer kind is tested the same four ways:
- forward: :func:`build` a tiny network from cfg text with random parameters, run it
  (:func:`outputs`) and compare a layer with an independent NumPy reference written in
  the test file (:func:`assert_matches`);
- gradients: :func:`check_gradients` compares ``Network.backward`` with central finite
  differences of the reported cost;
- fast paths: the same parameters in two networks (:func:`copy_params`) that take
  different code paths, every layer compared (:func:`assert_same_outputs`);
- shapes: :func:`upstream_cfgs` and :func:`assert_shapes_like_upstream` compare the
  layers of one kind in upstream cfgs with ../shared/oracle/cfg-shapes.

``device`` names the backend a network runs on: "cpu", and "cuda" where a GPU is usable
(:data:`DEVICES`; those runs carry the ``cuda`` mark). Every test marked :data:`on_devices`
runs on each against the same NumPy references (a kind the device does not support
skips there), and tests/gpu compares CUDA with the CPU through :func:`copy_params` +
:func:`assert_same_outputs` (forward) and :func:`assert_same_gradients` (training).
"""
import re

import numpy as np
import pytest

import darknetpy as dn

DEVICES = ("cpu", "cuda") if dn.cuda.is_available() else ("cpu",)
# the test takes a ``device`` argument
on_devices = pytest.mark.parametrize("device", [pytest.param(d, marks=pytest.mark.cuda) if d == "cuda" else d
                                                for d in DEVICES])
PARAM_NAMES = ("weights", "biases", "scales", "rolling_mean", "rolling_variance")
TRAINED = ("weights", "biases", "scales")
EPS = 1e-3


# --------------------------------------------------------------------------- networks


def cfg_text(body: str, shape, batch: int) -> str:
    c, h, w = shape
    return (f"[net]\nbatch={batch}\nsubdivisions=1\nwidth={w}\nheight={h}\nchannels={c}\n"
            f"learning_rate=0\nmomentum=0\ndecay=0\n\n{body}")


def build(tmp_path, body: str, shape=(3, 6, 6), *, batch: int = 2, train: bool = False, fuse: bool = False,
          seed=None, threads=None, device: str = "cpu", skip_unsupported: bool = True) -> dn.Network:
    """A network of ``body`` (cfg sections) on a (c, h, w) input with random parameters.

    ``train=True`` builds the cfg's mini-batch with training buffers (for backward), else an
    inference network of ``batch`` images, batch norm folded when ``fuse``. ``seed`` picks
    the parameters (default: derived from ``body``, so equal bodies get equal parameters).
    """
    if device not in DEVICES:
        pytest.skip(f"no {device} backend in this build")
    cfg = tmp_path / f"net{len(list(tmp_path.glob('net*.cfg')))}.cfg"
    cfg.write_text(cfg_text(body, shape, batch))
    try:
        net = dn.Network(cfg, batch=None if train else batch, fuse=fuse, threads=threads, device=device,
                         keep_outputs=True)  # the layer tests read every output
    except dn.UnsupportedError as e:
        if device == "cpu" or not skip_unsupported:
            raise
        pytest.skip(str(e))
    randomize(net, len(body) if seed is None else seed)
    return net


def params(net: dn.Network):
    """(layer, name) of every parameter array of the network."""
    for i in range(len(net.layers)):
        for name in PARAM_NAMES:
            try:
                net.param(i, name)
            except dn.InputError:
                continue
            yield i, name


def randomize(net: dn.Network, seed: int) -> None:
    """Random parameters, with BN scales and biases spread away from their neutral init so
    every term matters, and positive rolling variances."""
    rng = np.random.default_rng(seed)
    for i, name in params(net):
        n = net.param(i, name).size
        if name == "rolling_variance":
            values = rng.uniform(0.5, 1.5, n)
        else:
            values = {"weights": 0.5, "scales": 0.3, "biases": 0.3, "rolling_mean": 0.3}[name] \
                * rng.standard_normal(n) + (1.0 if name == "scales" else 0.0)
        net.set_param(i, name, values)


def copy_params(src: dn.Network, dst: dn.Network) -> None:
    """Give ``dst`` (same cfg, possibly another path, fusion or device) the parameters of ``src``."""
    for i, name in params(src):
        dst.set_param(i, name, src.param(i, name))


def param(net: dn.Network, layer: int, name: str, shape=None) -> np.ndarray:
    """A parameter array as float64 for the NumPy references, reshaped when asked."""
    values = net.param(layer, name).astype(np.float64)
    return values if shape is None else values.reshape(shape)


def random_input(net: dn.Network, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (scale * rng.standard_normal((net.batch,) + net.input_shape)).astype(np.float32)


def outputs(net: dn.Network, x: np.ndarray) -> list:
    """Every layer's output of one inference forward, as (N, c, h, w) (or (N, outputs, 1, 1))."""
    net.predict(x)
    return [net.layer_output(i) for i in range(len(net.layers))]


# --------------------------------------------------------------------------- comparisons


def assert_matches(got, ref, what: str = "", tol: float = 1e-5) -> None:
    """float32 engine output vs a float64 reference: max error <= tol * max(1, max |ref|)."""
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64).reshape(got.shape)
    err = np.abs(got - ref).max() if got.size else 0.0
    bound = tol * max(1.0, float(np.abs(ref).max()) if ref.size else 0.0)
    assert err <= bound, f"{what}: max error {err:.3g} > {bound:.3g}"


def assert_same_outputs(reference: dn.Network, other: dn.Network, x: np.ndarray, tol: float = 1e-4) -> None:
    """Every layer of ``other`` (a fast path, another device) against ``reference``."""
    for i, (ref, got) in enumerate(zip(outputs(reference, x), outputs(other, x))):
        assert got.shape == ref.shape, f"layer {i}"
        scale = max(float(np.abs(ref).max()), 1e-6)
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol * scale, err_msg=f"layer {i}")


def assert_same_gradients(reference: dn.Network, other: dn.Network, x: np.ndarray, y, tol: float = 1e-4) -> float:
    """One ``backward`` of two training networks with the same parameters (another device): the
    loss, the input delta, every layer's delta and every trainable array's delta agree within
    ``tol`` of each array's largest value. Returns the loss."""
    reference.seed(7)
    other.seed(7)  # the same dropout draws
    loss, dx = reference.backward(x, y, input_delta=True)
    got_loss, got_dx = other.backward(x, y, input_delta=True)
    np.testing.assert_allclose(got_loss, loss, rtol=tol, atol=tol, err_msg="loss")
    pairs = [("input delta", dx, got_dx)]
    pairs += [(f"layer {i} delta", reference.layer_delta(i), other.layer_delta(i))
              for i in range(len(reference.layers))]
    pairs += [(f"layer {i} {name} delta", reference.param_delta(i, name), other.param_delta(i, name))
              for i, name in trainable(reference)]
    for what, ref, got in pairs:
        scale = max(float(np.abs(ref).max()), 1e-6)
        np.testing.assert_allclose(got, ref, rtol=0, atol=tol * scale, err_msg=what)
    return loss


# --------------------------------------------------------------------------- activations


def activate(x: np.ndarray, name: str) -> np.ndarray:
    """darknet's activations (spec §3.4) on float64 (N, C, ...) arrays, computed correctly
    everywhere (README: no CPU-path zeros for relu6/swish/mish)."""
    x = np.asarray(x, np.float64)
    if name == "linear":
        return x
    if name == "logistic":
        return 1 / (1 + np.exp(-x))
    if name == "loggy":
        return 2 / (1 + np.exp(-x)) - 1
    if name == "relu":
        return np.maximum(x, 0)
    if name == "relu6":
        return np.clip(x, 0, 6)
    if name in ("leaky", "revleaky"):
        return np.where(x > 0, x, 0.1 * x)
    if name == "relie":
        return np.where(x > 0, x, 0.01 * x)
    if name == "ramp":
        return x * (x > 0) + 0.1 * x
    if name == "tanh":
        return np.tanh(x)
    if name == "elu":
        return np.where(x >= 0, x, np.expm1(x))
    if name == "selu":
        return np.where(x >= 0, 1.0507 * x, 1.0507 * 1.6732 * np.expm1(x))
    if name == "gelu":
        return 0.5 * x * (1 + np.tanh(0.797885 * x + 0.035677 * x ** 3))
    if name == "plse":
        return np.where(x < -4, 0.01 * (x + 4), np.where(x > 4, 0.01 * (x - 4) + 1, 0.125 * x + 0.5))
    if name == "hardtan":
        return np.clip(x, -1, 1)
    if name == "lhtan":
        return np.where(x < 0, 0.001 * x, np.where(x > 1, 0.001 * (x - 1) + 1, x))
    if name == "swish":
        return x / (1 + np.exp(-x))
    if name == "mish":
        return x * np.tanh(np.logaddexp(0, x))
    if name == "hard_mish":
        return np.where(x > 0, x, np.where(x > -2, x * x / 2 + x, 0))
    if name == "normalize_channels":
        pos = np.maximum(x, 0)
        return pos / (1e-4 + pos.sum(axis=1, keepdims=True))
    if name.startswith("normalize_channels_softmax"):
        m = x.max(axis=1, keepdims=True) if name.endswith("maxval") else 0
        e = np.exp(x - m)
        return e / (1e-4 + e.sum(axis=1, keepdims=True))
    raise ValueError(name)


ACTIVATIONS = ("linear", "logistic", "loggy", "relu", "relu6", "leaky", "revleaky", "relie", "ramp", "tanh",
               "elu", "selu", "gelu", "plse", "hardtan", "lhtan", "swish", "mish", "hard_mish",
               "normalize_channels", "normalize_channels_softmax", "normalize_channels_softmax_maxval")


# --------------------------------------------------------------------------- gradients


def cost_scale(net: dn.Network) -> float:
    """Loss = factor * reported cost: CE for [softmax]; for [cost], delta = t - x is the
    gradient of (t - x)^2 / 2, half the reported error."""
    return 1.0 if net.layers[-1].type == "softmax" else 0.5


def trainable(net: dn.Network):
    for i, name in params(net):
        if name in TRAINED and net.param_delta(i, name) is not None:
            yield i, name


def _numeric(loss_fn, values, setter, idx, eps):
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


def _assert_gradient(analytic, num, what, atol, rtol=2e-2):
    scale = max(np.abs(analytic).max(), np.abs(num).max(), 1e-3)
    err = np.abs(analytic - num).max()
    assert err <= rtol * scale + atol, f"{what}: analytic {analytic} vs numeric {num} (max err {err:.3g})"


def check_gradients(net: dn.Network, x=None, y=None, n_idx: int = 10, seed: int = 0, factor=None,
                    eps: float = EPS) -> dict:
    """Analytic gradients (``Network.backward``: darknet's deltas are NEGATIVE gradients) of the
    input and of every trainable array against central finite differences of ``factor``
    (default :func:`cost_scale`) times the reported cost, on ``n_idx`` random entries each.
    Kinked functions take a smaller ``eps`` so that few perturbations cross a kink. The
    network's RNG is reseeded before each evaluation (the same dropout mask). Returns the
    analytic parameter gradients by (layer, name)."""
    rng = np.random.default_rng(seed)
    if x is None:
        x = rng.standard_normal((net.batch,) + net.input_shape).astype(np.float32)
    if y is None:
        y = rng.standard_normal((net.batch, net.outputs)).astype(np.float32)
    k = cost_scale(net) if factor is None else factor

    def loss():
        net.seed(7)
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
    _assert_gradient(-dx.ravel()[idx], _numeric(loss, x.copy(), set_x, idx, eps), "input", atol)
    for (layer, name), g in grads.items():
        values = net.param(layer, name)
        idx = rng.choice(values.size, min(n_idx, values.size), replace=False)
        num = _numeric(loss, values, lambda v: net.set_param(layer, name, v), idx, eps)
        _assert_gradient(g[idx], num, f"layer {layer} {name}", atol)
    return grads


# --------------------------------------------------------------------------- cfg text


COST = "[cost]\ntype=sse\n"


def conv(filters: int, size: int = 3, stride: int = 1, pad: int = 1, act: str = "linear", extra: str = "") -> str:
    return (f"[convolutional]\nfilters={filters}\nsize={size}\nstride={stride}\npad={pad}\n"
            f"activation={act}\n{extra}\n")


# --------------------------------------------------------------------------- upstream shapes


def upstream_cfgs(kind: str, limit: int = 2) -> list:
    """The ``limit`` smallest upstream cfgs with a ``[kind]`` section that darknetpy builds
    (empty without ../shared: the parametrised test is then skipped)."""
    from test_cfg_shapes import REFUSED, cfg_files, cfg_name

    section = re.compile(rf"^\s*\[{kind}\]", re.M | re.I)
    found = [p for p in cfg_files()
             if cfg_name(p) not in REFUSED and section.search(p.read_text(errors="replace"))]
    return sorted(found, key=lambda p: p.stat().st_size)[:limit]


def assert_shapes_like_upstream(path, kind: str) -> None:
    """Each ``kind`` layer of ``path`` has upstream's type name, output shape and BN flag."""
    from test_cfg_shapes import assert_layer_like_upstream, cfg_name, upstream_rows

    rows = upstream_rows(cfg_name(path))
    with dn.Network(path, batch=1, fuse=False) as net:
        layers = [layer for layer in net.layers if layer.type == kind]
        assert layers, f"{path} has no {kind} layer"
        for layer in layers:
            assert_layer_like_upstream(layer, rows[layer.index])


def cfg_id(path) -> str:
    return path.stem
