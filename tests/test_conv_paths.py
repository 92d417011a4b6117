"""The fused inference path of 3x3 stride-1 pad-1 convolutions (Winograd
F(4x4, 3x3) or F(2x2, 3x3)) against the unfused im2col + GEMM path, on random networks."""
import numpy as np
import pytest

import darknetpy as dn


def conv_cfg(c, h, w, layers):
    text = f"[net]\nbatch=1\nchannels={c}\nheight={h}\nwidth={w}\n"
    for filters, size, stride, bn, act in layers:
        text += (f"\n[convolutional]\nbatch_normalize={bn}\nfilters={filters}\nsize={size}\nstride={stride}\n"
                 f"pad=1\nactivation={act}\n")
    return text


def write_weights(path, c, layers, seed):
    rng = np.random.default_rng(seed)
    parts = [np.array([0, 2, 5], "<i4").tobytes(), np.zeros(1, "<u8").tobytes()]
    for filters, size, _, bn, _ in layers:
        record = [rng.uniform(-0.5, 0.5, filters)]
        if bn:
            record += [rng.uniform(0.5, 1.5, filters), rng.uniform(-0.2, 0.2, filters),
                       rng.uniform(0.5, 2.0, filters)]
        record.append(rng.standard_normal(filters * c * size * size) / np.sqrt(c * size * size))
        parts.append(np.concatenate(record).astype("<f4").tobytes())
        c = filters
    path.write_bytes(b"".join(parts))


SHAPES = [
    # input c, h, w; layers (filters, size, stride, batch_normalize, activation)
    (1, 5, 7, [(3, 3, 1, 1, "leaky")]),
    (3, 8, 8, [(8, 3, 1, 1, "linear"), (5, 3, 1, 1, "mish")]),
    (5, 13, 13, [(17, 3, 1, 1, "leaky"), (9, 1, 1, 1, "linear"), (11, 3, 1, 1, "linear")]),
    (7, 1, 1, [(4, 3, 1, 1, "linear")]),
    (2, 3, 11, [(6, 3, 1, 1, "linear")]),
    (16, 33, 29, [(32, 3, 1, 1, "leaky"), (24, 3, 2, 1, "leaky"), (13, 3, 1, 1, "logistic")]),
    (3, 70, 150, [(10, 3, 1, 1, "leaky"), (20, 3, 1, 0, "linear")]),
    (64, 20, 20, [(64, 3, 1, 1, "linear")]),
    # weight sets large enough that small maps take 2x2 tiles (F(2x2, 3x3))
    (256, 13, 11, [(128, 3, 1, 1, "leaky")]),
    (192, 9, 8, [(160, 3, 1, 1, "linear")]),
]


@pytest.mark.parametrize("c,h,w,layers", SHAPES)
@pytest.mark.parametrize("threads", [1, 2])
def test_fused_3x3_matches_im2col(tmp_path, c, h, w, layers, threads):
    cfg = tmp_path / "net.cfg"
    cfg.write_text(conv_cfg(c, h, w, layers))
    weights = tmp_path / "net.weights"
    write_weights(weights, c, layers, seed=h * 1000 + w)
    x = np.random.default_rng(1).uniform(-1, 1, (c, h, w)).astype(np.float32)
    with dn.Network(cfg, weights, fuse=False, threads=threads) as ref_net, \
            dn.Network(cfg, weights, fuse=True, threads=threads) as net:
        ref_net.predict(x)
        net.predict(x)
        for i in range(len(layers)):
            ref = ref_net.layer_output(i)
            got = net.layer_output(i)
            assert got.shape == ref.shape
            scale = max(float(np.abs(ref).max()), 1e-6)
            np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4 * scale, err_msg=f"layer {i}")
