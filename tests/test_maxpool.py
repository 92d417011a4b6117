"""[maxpool] forward against an independent NumPy implementation of spec §1.5/§3.5
(window of output (i, j) starts at (i*stride - padding//2, j*stride - padding//2),
positions outside the image are ignored), on the inference path and the training path."""
import numpy as np
import pytest

import darknetpy as dn


def reference_maxpool(x, size, stride, padding):
    c, h, w = x.shape
    out_h, out_w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
    off = padding // 2
    out = np.empty((c, out_h, out_w), np.float32)
    for i in range(out_h):
        for j in range(out_w):
            y0, x0 = i * stride - off, j * stride - off
            window = x[:, max(y0, 0):max(y0 + size, 0), max(x0, 0):max(x0 + size, 0)]
            out[:, i, j] = window.reshape(c, -1).max(axis=1)
    return out


@pytest.mark.parametrize("size,stride,padding,h,w", [
    (2, 2, None, 13, 13), (2, 2, None, 8, 10), (2, 1, None, 7, 5), (3, 2, None, 9, 11),
    (5, 1, None, 19, 19), (9, 1, None, 19, 19), (13, 1, None, 19, 19), (3, 1, 0, 6, 7), (4, 3, 2, 11, 10),
])
@pytest.mark.parametrize("train", [False, True])
def test_maxpool_matches_reference(tmp_path, size, stride, padding, h, w, train):
    pad_line = "" if padding is None else f"padding={padding}\n"
    cfg = tmp_path / "pool.cfg"
    cfg.write_text(f"[net]\nbatch=1\nwidth={w}\nheight={h}\nchannels=3\n"
                   f"[maxpool]\nsize={size}\nstride={stride}\n{pad_line}")
    x = np.random.default_rng(size * 100 + h).standard_normal((3, h, w)).astype(np.float32)
    with dn.Network(cfg, batch=None if train else 1) as net:
        if train:  # the training path records argmax indexes; forward through a training step's buffers
            net.backward(x[None], np.zeros((1, net.outputs), np.float32))
        else:
            net.predict(x)
        ours = net.layer_output(0)[0]
    ref = reference_maxpool(x, size, stride, size - 1 if padding is None else padding)
    np.testing.assert_array_equal(ours, ref)
