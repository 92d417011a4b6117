"""The forward oracles on CUDA: upstream darknet's per-layer outputs of the tiny classifier
(../shared/oracle/tiny) and yolov4-tiny's heads, and the same networks on the CPU."""
import numpy as np
import pytest

import darknetpy as dn
from conftest import read_f32
from test_forward_oracle import assert_layer_close, assert_same_top5, layer_files

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not dn.cuda.is_available(),
                                                   reason=f"no usable CUDA GPU: {dn.cuda.unavailable_reason()}")]


@pytest.fixture(scope="module")
def tiny(oracle):
    folder = oracle / "tiny"
    return folder, read_f32(folder / "input.f32", (3, 224, 224))


def test_tiny_every_layer_like_upstream(tiny):
    folder, x = tiny
    with dn.Network(folder / "tiny.cfg", folder / "tiny.weights", device="cuda", keep_outputs=True) as net:
        out = net.predict(x)
        for idx, path, shape in layer_files(folder):
            assert_layer_close(net.layer_output(idx)[0], read_f32(path, shape), f"layer {idx}")
    for name in ("output.f32", "output_fused.f32"):
        ref = read_f32(folder / name)
        assert np.abs(out[0] - ref).max() <= 1e-4, name
        assert_same_top5(out[0], ref)


def test_tiny_batch_like_cpu(tiny):
    folder, x = tiny
    xs = np.stack([x, np.ascontiguousarray(x[:, :, ::-1]), np.ascontiguousarray(x[:, ::-1])])
    with dn.Network(folder / "tiny.cfg", folder / "tiny.weights", batch=3, device="cuda:0") as gpu, \
            dn.Network(folder / "tiny.cfg", folder / "tiny.weights", batch=3) as cpu:
        np.testing.assert_allclose(gpu.predict(xs), cpu.predict(xs), rtol=0, atol=1e-5)


def test_yolov4_tiny_heads_like_upstream(oracle):
    folder = oracle / "yolov4-tiny"
    x = read_f32(folder / "input.f32", (3, 416, 416))
    with dn.Network(folder / "yolov4-tiny.cfg", folder / "yolov4-tiny.weights", device="cuda", keep_outputs=True) as net:
        net.predict(x)
        for idx, shape in ((30, (255, 13, 13)), (37, (255, 26, 26))):
            for ref_dir in (folder, folder / "fused"):
                assert_layer_close(net.layer_output(idx)[0], read_f32(ref_dir / f"yolo_{idx}.f32", shape),
                                   f"yolo {idx} vs {ref_dir.name}")
