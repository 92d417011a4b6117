"""[yolo] at inference (spec §3.10): per anchor slot, the logistic on x, y, objectness and
class scores (none with new_coords=1), then x, y <- s*v - (s - 1)/2; against NumPy. Backward
passes the loss's delta on unscaled. Shapes of upstream cfgs."""
import numpy as np
import pytest

from _harness import (activate, assert_matches, assert_shapes_like_upstream, build, cfg_id, on_devices, outputs,
                      random_input, upstream_cfgs)

CLASSES, SLOTS = 3, 2
YOLO = f"[yolo]\nclasses={CLASSES}\nnum=3\nmask=0,2\nanchors=10,14, 23,27, 37,58\n"


def reference_yolo(x, scale_x_y, new_coords):
    n, _, h, w = x.shape
    v = x.astype("f8").reshape(n, SLOTS, 5 + CLASSES, h, w).copy()
    if not new_coords:
        for e in [0, 1] + list(range(4, 5 + CLASSES)):
            v[:, :, e] = activate(v[:, :, e], "logistic")
    v[:, :, :2] = scale_x_y * v[:, :, :2] - (scale_x_y - 1) / 2
    return v.reshape(x.shape)


@on_devices
@pytest.mark.parametrize("scale_x_y,new_coords", [(1.0, 0), (1.05, 0), (2.0, 1)])
def test_forward_matches_numpy(tmp_path, device, scale_x_y, new_coords):
    body = YOLO + f"scale_x_y={scale_x_y}\nnew_coords={new_coords}\n"
    net = build(tmp_path, body, (SLOTS * (5 + CLASSES), 3, 4), device=device)
    x = random_input(net, scale=3.0)
    assert_matches(outputs(net, x)[0], reference_yolo(x, scale_x_y, new_coords), body)


def test_backward_passes_its_delta_on_unscaled(tmp_path):
    """upstream's CPU path (spec D5.5): the loss's delta is added unscaled to the input's delta
    (it is already the gradient w.r.t. the raw inputs). The loss itself: tests/test_yolo_loss.py."""
    net = build(tmp_path, YOLO, (SLOTS * (5 + CLASSES), 2, 3), train=True)
    x = random_input(net, scale=3.0)
    boxes = [np.array([[1, 0.4, 0.6, 0.3, 0.5]]), np.array([[0, 0.2, 0.2, 0.1, 0.2], [2, 0.7, 0.5, 0.6, 0.4]])]
    _, dx = net.backward(x, boxes, input_delta=True)
    delta = net.layer_delta(0)
    assert np.count_nonzero(delta) > 24  # every objectness entry, and the assigned slots
    np.testing.assert_array_equal(dx, delta)


@pytest.mark.parametrize("path", upstream_cfgs("yolo"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "yolo")
