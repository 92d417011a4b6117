"""[detection] (YOLOv1 head), inference: the input unchanged, with softmax=1 a softmax over
each cell's class probabilities (the first side^2 * classes values); against NumPy; the
input size must match side^2 * (5 * num + classes); upstream shapes. (Box decoding:
tests/test_detector_heads_ref.py.)"""
import numpy as np
import pytest

import darknetpy as dn
from _harness import assert_matches, assert_shapes_like_upstream, build, cfg_id, on_devices, outputs, \
    random_input, upstream_cfgs


def reference_detection(x, side, classes, softmax):
    out = x.reshape(len(x), -1).astype(np.float64).copy()
    if softmax:
        cls = out[:, :side * side * classes].reshape(len(x), side * side, classes)
        e = np.exp(cls - cls.max(axis=-1, keepdims=True))
        out[:, :side * side * classes] = (e / e.sum(axis=-1, keepdims=True)).reshape(len(x), -1)
    return out


@on_devices
@pytest.mark.parametrize("softmax", [0, 1])
def test_forward_matches_numpy(tmp_path, device, softmax):
    side, num, classes = 3, 2, 4
    inputs = side * side * (5 * num + classes)
    body = f"[detection]\nclasses={classes}\ncoords=4\nnum={num}\nside={side}\nsoftmax={softmax}\nsqrt=1\nrescore=1\n"
    net = build(tmp_path, body, (inputs, 1, 1), device=device)
    x = random_input(net, scale=2.0)
    got = outputs(net, x)[0].reshape(len(x), -1)
    assert_matches(got, reference_detection(x, side, classes, softmax), "detection")


def test_input_size_must_fit(tmp_path):
    with pytest.raises(dn.CfgError, match=r"set output=126 in the \[connected\] layer"):
        build(tmp_path, "[detection]\nclasses=4\ncoords=4\nnum=2\nside=3\n", (125, 1, 1))


def test_training_is_refused(tmp_path):
    with pytest.raises(dn.CfgError, match=r"training a \[detection\]"):
        build(tmp_path, "[detection]\nclasses=4\ncoords=4\nnum=2\nside=3\n", (126, 1, 1), train=True)


@pytest.mark.parametrize("path", upstream_cfgs("detection"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "detection")
