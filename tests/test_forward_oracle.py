"""Forward outputs match upstream darknet's (../shared/oracle/tiny and yolov4-tiny),
with batch norm applied as written and folded into the convolutions."""
import re

import numpy as np
import pytest

import darknetpy as dn
from conftest import read_f32


def layer_files(folder):
    """(index, path, shape) for every layers/NNN_<type>.f32 listed in shapes.txt."""
    rows = []
    for line in (folder / "shapes.txt").read_text().splitlines():
        m = re.match(r"layers/(\d+)_\S+\.f32 float32 c=(\d+) h=(\d+) w=(\d+)", line)
        if m:
            idx, c, h, w = (int(g) for g in m.groups())
            path = folder / line.split()[0]
            if path.exists():  # yolov4-tiny lists its layers but ships only the yolo outputs
                rows.append((idx, path, (c, h, w)))
    return rows


def assert_layer_close(ours, ref, what):
    tol = 1e-3 * max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(ours - ref).max())
    assert err <= tol, f"{what}: max abs error {err:g} > {tol:g}"


@pytest.fixture(scope="module")
def tiny(oracle):
    folder = oracle / "tiny"
    x = read_f32(folder / "input.f32", (3, 224, 224))
    return folder, x


def test_tiny_unfused_every_layer(tiny):
    folder, x = tiny
    with dn.Network(folder / "tiny.cfg", folder / "tiny.weights", fuse=False, keep_outputs=True) as net:
        out = net.predict(x)
        for idx, path, shape in layer_files(folder):
            assert_layer_close(net.layer_output(idx)[0], read_f32(path, shape), f"layer {idx}")
    ref = read_f32(folder / "output.f32")
    assert np.abs(out[0] - ref).max() <= 1e-4
    assert_same_top5(out[0], ref)


def assert_same_top5(ours, ref):
    order = np.argsort(-ref, kind="stable")[:6]
    gaps = -np.diff(ref[order])
    k = 5
    for i in range(5):  # compare ranks only where the reference's neighbours are separated
        if gaps[i] <= 1e-5:
            k = i
            break
    assert list(np.argsort(-ours, kind="stable")[:k]) == list(order[:k])


def test_tiny_fused_output(tiny):
    folder, x = tiny
    with dn.Network(folder / "tiny.cfg", folder / "tiny.weights") as net:  # fused, as classifier predict
        out = net.predict(x)[0]
    ref = read_f32(folder / "output_fused.f32")
    assert np.abs(out - ref).max() <= 1e-4
    assert_same_top5(out, ref)


def test_tiny_batch_of_two_equals_two_singles(tiny):
    folder, x = tiny
    flipped = np.ascontiguousarray(x[:, :, ::-1])
    with dn.Network(folder / "tiny.cfg", folder / "tiny.weights", batch=2) as net2, \
            dn.Network(folder / "tiny.cfg", folder / "tiny.weights") as net1:
        both = net2.predict(np.stack([x, flipped]))
        singles = np.concatenate([net1.predict(x), net1.predict(flipped)])
    np.testing.assert_allclose(both, singles, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fused", [False, True])
def test_yolov4_tiny_heads(oracle, fused):
    folder = oracle / "yolov4-tiny"
    x = read_f32(folder / "input.f32", (3, 416, 416))
    with dn.Network(folder / "yolov4-tiny.cfg", folder / "yolov4-tiny.weights", fuse=fused, keep_outputs=True) as net:
        out = net.predict(x)
        ref_dir = folder / "fused" if fused else folder
        for idx, shape in ((30, (255, 13, 13)), (37, (255, 26, 26))):
            assert_layer_close(net.layer_output(idx)[0], read_f32(ref_dir / f"yolo_{idx}.f32", shape),
                               f"yolo {idx}")
        if not fused:
            for idx, path, shape in layer_files(folder):
                assert_layer_close(net.layer_output(idx)[0], read_f32(path, shape), f"layer {idx}")
    assert out.shape == (1, 255 * 26 * 26)


def test_results_stay_valid_after_next_call(tiny):
    folder, x = tiny
    with dn.Network(folder / "tiny.cfg", folder / "tiny.weights") as net:
        first = net.predict(x)
        kept = first.copy()
        net.predict(np.zeros_like(x))
    np.testing.assert_array_equal(first, kept)
