"""[Gaussian_yolo], inference (spec D1.4): per anchor slot of 9 + classes planes the logistic on
mu_x, sigma_x, mu_y, sigma_y, sigma_w, sigma_h, objectness and classes (mu_w, mu_h raw), then
scale_x_y on mu_x, mu_y; against NumPy; filters must fit; upstream shapes. (Box decoding:
tests/test_detector_heads_ref.py.)"""
import numpy as np
import pytest

import darknetpy as dn
from _harness import assert_matches, assert_shapes_like_upstream, build, cfg_id, on_devices, outputs, \
    random_input, upstream_cfgs


def reference_gaussian_yolo(x, slots, classes, s):
    n, c, h, w = x.shape
    v = x.astype(np.float64).reshape(n, slots, 9 + classes, h, w).copy()
    squashed = [0, 1, 2, 3, 5, 7] + list(range(8, 9 + classes))
    v[:, :, squashed] = 1 / (1 + np.exp(-v[:, :, squashed]))
    v[:, :, [0, 2]] = s * v[:, :, [0, 2]] - (s - 1) / 2
    return v.reshape(n, c, h, w)


@on_devices
@pytest.mark.parametrize("scale", [1.0, 1.1])
def test_forward_matches_numpy(tmp_path, device, scale):
    classes = 3
    body = (f"[Gaussian_yolo]\nmask=0,2\nanchors=10,14, 23,27, 37,58\nclasses={classes}\nnum=3\n"
            f"scale_x_y={scale}\niou_loss=giou\nuc_normalizer=1.0\nignore_thresh=.5\n")
    net = build(tmp_path, body, (2 * (9 + classes), 4, 5), device=device)
    x = random_input(net, scale=2.0)
    assert_matches(outputs(net, x)[0], reference_gaussian_yolo(x, 2, classes, scale), "Gaussian_yolo")


def test_console_line_as_upstream(tmp_path):
    net = build(tmp_path, "[Gaussian_yolo]\nmask=0\nanchors=1,1\nclasses=1\nnum=1\nyolo_point=left_top\n"
                "iou_loss=ciou\niou_normalizer=0.5\n", (10, 2, 2))
    assert net.layers[0].summary.strip() == ("[Gaussian_yolo] iou loss: ciou (4), iou_norm: 0.50, obj_norm: 1.00, "
                                             "cls_norm: 1.00, delta_norm: 1.00, scale: 1.00, point: 2")


def test_filters_must_fit(tmp_path):
    with pytest.raises(dn.CfgError, match=r"set filters=24 in the \[convolutional\]"):
        build(tmp_path, "[Gaussian_yolo]\nmask=0,1\nanchors=1,1, 2,2\nclasses=3\nnum=2\n", (16, 2, 2))


@pytest.mark.parametrize("path", upstream_cfgs("Gaussian_yolo", limit=1), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "Gaussian_yolo")
