"""An inference network keeps a convolution's weights once: packed for the GEMM (a permutation
of the raw array, which is freed; Winograd layers transform it as they go), or raw (grouped
layers). Everything that reads the raw weights (saving, param(), loading, resizing) gets them
back exactly."""
import numpy as np
import pytest

import darknetpy as dn
from conftest import conv


# every way a convolution keeps its weights at inference
CFG = ("[net]\nwidth=32\nheight=32\nchannels=16\n\n"
       + conv(16)                       # 0: 32x32 map of 16 channels: Winograd, packed only
       + conv(32, stride=2)             # 1: batch norm, im2col: packed only
       + conv(32, extra="groups=4\n")  # 2: grouped: raw, unpacked
       + conv(32, size=1, bn=0)         # 3: no batch norm: packed only
       + conv(32, size=1)               # 4: 1x1 with batch norm: packed only
       + conv(16, size=1, bn=0))        # 5


def write_weights(net, path, seed=0):
    """A .weights file for net with random values (positive variances); its bytes."""
    rng = np.random.default_rng(seed)
    values = rng.standard_normal(sum(layer.n_weights for layer in net.layers)).astype("<f4")
    at = 0
    for layer in net.layers:  # batch norm variances: biases, scales, means, *variances*, weights
        n = layer.output_shape[0]
        if layer.type == "convolutional" and layer.batch_normalize:
            values[at + 3 * n:at + 4 * n] = np.abs(values[at + 3 * n:at + 4 * n]) + 0.5
        at += layer.n_weights
    data = np.array([0, 2, 5], "<i4").tobytes() + np.zeros(1, "<u8").tobytes() + values.tobytes()
    path.write_bytes(data)
    return data, values


@pytest.fixture
def files(tmp_path):
    cfg = tmp_path / "net.cfg"
    cfg.write_text(CFG)
    with dn.Network(cfg, fuse=False) as bare:
        data, values = write_weights(bare, tmp_path / "net.weights")
    return cfg, tmp_path / "net.weights", data, values


def forward(net, seed=1):
    return net.predict(np.random.default_rng(seed).random((1, 16, 32, 32), dtype=np.float32))


def test_save_after_forward_is_the_file(files, tmp_path):
    cfg, weights, data, _ = files
    net = dn.Network(cfg, weights)
    before = forward(net)
    net.save_weights(tmp_path / "out.weights")
    assert (tmp_path / "out.weights").read_bytes() == data
    np.testing.assert_array_equal(forward(net), before)  # restored raw weights change nothing
    net.save_weights(tmp_path / "again.weights")
    assert (tmp_path / "again.weights").read_bytes() == data


def test_params_are_the_files(files):
    cfg, weights, _, values = files
    net = dn.Network(cfg, weights)
    before = forward(net)
    at = 0
    for i, layer in enumerate(net.layers):
        n = layer.output_shape[0]
        k = layer.n_weights - n * (4 if layer.batch_normalize else 1)
        np.testing.assert_array_equal(net.param(i, "weights"), values[at + layer.n_weights - k:at + layer.n_weights])
        np.testing.assert_array_equal(net.param(i, "biases"), values[at:at + n])
        at += layer.n_weights
    np.testing.assert_array_equal(forward(net), before)  # prepared again from the same weights


def test_set_param_reaches_the_forward(files):
    cfg, weights, _, _ = files
    net, reference = dn.Network(cfg, weights), dn.Network(cfg, weights, fuse=False)
    before = forward(net)
    for i in (0, 1, 3):
        w = net.param(i, "weights") * 0.5
        net.set_param(i, "weights", w)
        reference.set_param(i, "weights", w)
    after, expected = forward(net), forward(reference)
    np.testing.assert_allclose(after, expected, rtol=0, atol=1e-4 * np.abs(expected).max())
    assert np.abs(after - before).max() > 0.1 * np.abs(expected).max()


def test_load_and_resize_of_a_prepared_network(files, tmp_path):
    cfg, weights, data, _ = files
    net = dn.Network(cfg)
    forward(net)
    net.load_weights(weights)  # onto packed-only layers
    expected = forward(dn.Network(cfg, weights))
    np.testing.assert_array_equal(forward(net), expected)
    net.resize(48, 48)
    net.save_weights(tmp_path / "resized.weights")
    assert (tmp_path / "resized.weights").read_bytes() == data


def test_shared_weights_stay_with_their_owner(tmp_path):
    """A layer that lends its weights (share_index) keeps its raw array for the borrower."""
    cfg = tmp_path / "shared.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=16\n\n" + conv(16, size=1)
                   + conv(16, size=1, extra="share_index=0\n"))
    with dn.Network(cfg, fuse=False) as bare:
        data, _ = write_weights(bare, tmp_path / "shared.weights")
    net, reference = dn.Network(cfg, tmp_path / "shared.weights"), dn.Network(cfg, tmp_path / "shared.weights",
                                                                                fuse=False)
    x = np.random.default_rng(3).random((1, 16, 8, 8), dtype=np.float32)
    np.testing.assert_allclose(net.predict(x), reference.predict(x), rtol=1e-4, atol=1e-5)
    net.save_weights(tmp_path / "out.weights")
    assert (tmp_path / "out.weights").read_bytes() == data


def test_memory_counts_one_copy(files):
    """net.memory() reports the packed copy instead of the raw one (Winograd layers too: they
    transform it as they go), and the raw one again
    while it is restored (after param()), until the next forward drops it."""
    cfg, weights, _, _ = files
    fused, unfused = dn.Network(cfg, weights), dn.Network(cfg, weights, fuse=False)
    raw_packed = 4 * sum(layer.n_weights - layer.output_shape[0] * (4 if layer.batch_normalize else 1)
                         for i, layer in enumerate(fused.layers) if i != 2)
    prepared = fused.memory()["weights"]
    extra = prepared - unfused.memory()["weights"]
    assert 0 < extra < raw_packed // 2  # folded scales and biases: no Winograd copy, no second packed one
    fused.param(1, "weights")
    assert fused.memory()["weights"] == prepared + raw_packed  # restored ...
    forward(fused)
    assert fused.memory()["weights"] == prepared  # ... and dropped again
