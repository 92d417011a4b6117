"""[region] (YOLOv2 head), inference: the input transposed to cell-major records
[tx, ty, tw, th, obj, classes...], the logistic on obj and, with softmax=1, a softmax over
the classes; against NumPy; shapes of upstream cfgs. (Box decoding: tests/test_detector_ref.py.)"""
import numpy as np
import pytest

from _harness import assert_matches, assert_shapes_like_upstream, build, cfg_id, on_devices, outputs, \
    random_input, upstream_cfgs


def reference_region(x, num, classes, softmax):
    n, c, h, w = x.shape
    records = x.astype(np.float64).reshape(n, c, h * w).transpose(0, 2, 1).reshape(n, h * w, num, 5 + classes)
    records = records.copy()
    records[..., 4] = 1 / (1 + np.exp(-records[..., 4]))
    if softmax:
        cls = records[..., 5:]
        e = np.exp(cls - cls.max(axis=-1, keepdims=True))
        records[..., 5:] = e / e.sum(axis=-1, keepdims=True)
    return records.reshape(n, -1)


@on_devices
@pytest.mark.parametrize("softmax", [0, 1])
def test_forward_matches_numpy(tmp_path, device, softmax):
    num, classes = 3, 4
    body = f"[region]\nanchors=1,1, 2,3, 4,2\nclasses={classes}\ncoords=4\nnum={num}\nsoftmax={softmax}\n"
    net = build(tmp_path, body, (num * (classes + 5), 3, 5), device=device)
    x = random_input(net, scale=3.0)
    got = outputs(net, x)[0].reshape(len(x), -1)
    assert_matches(got, reference_region(x, num, classes, softmax), "region")


def test_channels_must_fit_the_records(tmp_path):
    with pytest.raises(Exception, match=r"filters=27"):
        build(tmp_path, "[region]\nclasses=4\ncoords=4\nnum=3\n", (26, 3, 3))


@pytest.mark.parametrize("path", upstream_cfgs("region"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "region")
