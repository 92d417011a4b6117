"""The [yolo] training loss (spec D5) against upstream's one-step oracles
(../shared/oracle/detector/onestep, its README) and finite differences.

Outputs, deltas and the loss are upstream's forward values; they must match within the
README's tolerances. After-weights: upstream's CPU convolution backward *assigns* the
delta of its input (its col2im zeroes the slice first) where the GPU path and this engine
add to it. A layer read by a convolution and also by a later layer (tiny4's route -4 of
the channel split, the CSP blocks' routes) loses that later layer's contribution on
upstream's CPU path, and so do all layers before it. Convolutions after every such
point must match upstream within the README's tolerance; the ones before them follow
the GPU path (an emulation of the CPU assignment reproduced all after-weights to 2e-6).
"""
import re
from pathlib import Path

import numpy as np
import pytest

import darknetpy as dn
from conftest import read_f32
from darknetpy.network import detector_truth

CASES = {  # case: (cfg, init weights, yolo layers)
    "mse_rand": ("nobn_mse", "init_random", (14, 21)),
    "mse": ("nobn_mse", "init_trained_fused", (14, 21)),
    "giou": ("nobn_giou", "init_trained_fused", (14, 21)),
    "ciou": ("nobn_ciou", "init_trained_fused", (14, 21)),
    "newcoords": ("nobn_newcoords", "init_trained_fused", (14, 21)),
    "csp_rand": ("nobn_csp", "init_csp_random", (30, 37)),
}
TOL = 1e-5  # the README's: |ours - ref| <= 1e-5 * max(1, |ref|) elementwise


@pytest.fixture(scope="module")
def onestep(oracle) -> Path:
    d = oracle / "detector" / "onestep"
    if not d.is_dir():
        pytest.skip("oracle/detector/onestep is not present")
    return d


def label_rows(raw: np.ndarray) -> list:
    """darknet's truth records (x y w h class track_id, ending at x == 0) as label-file rows."""
    out = []
    for image in raw.reshape(len(raw), -1, 6):
        boxes = image[:np.argmin(image[:, 0] != 0)] if (image[:, 0] == 0).any() else image
        out.append(np.column_stack([boxes[:, 4], boxes[:, :4]]))
    return out


def weight_arrays(path: Path, net: dn.Network) -> dict:
    """Per convolution: (biases, weights) read from a .weights file written for `net`'s layers."""
    flat, pos, out = read_f32(path)[5:], 0, {}
    for layer in net.layers:
        if layer.type == "convolutional":
            n = layer.output_shape[0]
            out[layer.index] = flat[pos:pos + n], flat[pos + n:pos + layer.n_weights]
            pos += layer.n_weights
    assert pos == len(flat)
    return out


def cpu_assign_affected(net: dn.Network) -> set:
    """Layers whose update differs between upstream's CPU path (a convolution assigns its input's
    delta) and the GPU path: a convolution's input also read by a later layer, and all before it."""
    readers = {}
    for layer in net.layers:
        for src in layer.input_layers:
            readers.setdefault(src, []).append(layer.index)
    clobbered = [layer.input_layers[0] for layer in net.layers if layer.type == "convolutional"
                 and layer.input_layers[0] >= 0 and max(readers[layer.input_layers[0]]) > layer.index]
    affected, todo = set(), list(clobbered)
    while todo:
        i = todo.pop()
        if i >= 0 and i not in affected:
            affected.add(i)
            todo.extend(net.layers[i].input_layers)
    return affected


@pytest.fixture(scope="module", params=list(CASES))
def step(request, onestep):
    """One train_step of a case: (case dir, net after the step, its loss, yolo layers)."""
    case = request.param
    cfg, init, heads = CASES[case]
    x = read_f32(onestep / "X.f32", (4, 3, 128, 128))
    raw = read_f32(onestep / "T.f32", (4, 1200))
    boxes = label_rows(raw)
    assert [len(b) for b in boxes] == [3, 1, 4, 2]  # truth.txt
    np.testing.assert_array_equal(detector_truth(boxes, 1200), raw)
    net = dn.Network(onestep / f"{cfg}.cfg", onestep / f"{init}.weights", batch=None, fuse=False)
    assert net.is_detector and net.truths == 1200
    loss = net.train_step(x, boxes)
    yield onestep / "out" / case, net, loss, heads, onestep / f"{init}.weights"
    net.close()


def close(ours, ref, what, tol=TOL):
    err = np.abs(ours - ref) / np.maximum(1, np.abs(ref))
    assert err.max() <= tol, f"{what}: max relative difference {err.max():.3g} > {tol:.3g}"


def test_outputs_and_deltas_match_upstream(step):
    out, net, _, heads, _ = step
    for i in heads:
        shape = net.layers[i].output_shape
        close(net.layer_output(i), read_f32(out / f"yolo{i}_output.f32", (4,) + shape), f"layer {i} output")
        delta = net.layer_delta(i)
        assert delta.shape == (4,) + shape
        close(delta, read_f32(out / f"yolo{i}_delta.f32", (4,) + shape), f"layer {i} delta")


def test_loss_matches_upstream(step):
    out, _, loss, _, _ = step
    ref = float((out / "loss.txt").read_text().split()[1])
    assert abs(loss - ref) <= 1e-6 * ref, (loss, ref)


def numbers(line: str) -> list:
    return [float(v) for v in re.findall(r"-?\d+\.\d+|\b\d+\b", line.split("Region", 1)[1])]


def test_per_head_lines_match_upstream(step):
    """darknet's v3 lines (the log shows them twice: the step and a verification pass)."""
    out, net, _, heads, _ = step
    logged = [line for line in (out.parent / f"{out.name}.log").read_text().splitlines() if line.startswith("v3 (")]
    stats = net.detection_stats()
    assert sorted(stats) == list(heads)
    for i, ref in zip(heads, logged[:len(heads)]):
        line = stats[i]["line"]
        assert line.split("Region")[0] == ref.split("Region")[0]
        ours, theirs = numbers(line), numbers(ref)
        assert ours[0] == theirs[0] == i and ours[2] == theirs[2] == stats[i]["count"]  # layer, count
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=2e-6)
        assert stats[i]["total_bbox"] == stats[i]["count"] and stats[i]["rewritten_bbox"] == 0
        assert 0 < stats[i]["avg_noobj"] < 1 and 0 < stats[i]["avg_obj"] < 1 and stats[i]["recall75"] <= stats[i]["recall50"]


def test_weights_after_the_step(step):
    out, net, _, _, init = step
    ref = weight_arrays(out / "after.weights", net)
    before = weight_arrays(init, net)
    affected = cpu_assign_affected(net)
    compared = 0
    for i, (ref_b, ref_w) in ref.items():
        ours_b, ours_w = net.param(i, "biases"), net.param(i, "weights")
        if i in affected:
            # the GPU path: the same step direction, a different magnitude below the clobbered delta
            assert not np.array_equal(ours_w, before[i][1])
            continue
        close(ours_b, ref_b, f"layer {i} biases")
        close(ours_w, ref_w, f"layer {i} weights")
        compared += 1
    assert compared >= 3


def test_raw_truth_layout_gives_the_same_step(onestep):
    cfg, init, heads = CASES["ciou"]
    x = read_f32(onestep / "X.f32", (4, 3, 128, 128))
    raw = read_f32(onestep / "T.f32", (4, 1200))
    results = []
    for truth in (raw, label_rows(raw)):
        with dn.Network(onestep / f"{cfg}.cfg", onestep / f"{init}.weights", batch=None, fuse=False) as net:
            loss = net.train_step(x, truth)
            results.append((loss, net.layer_delta(heads[0]), net.param(0, "weights")))
    assert results[0][0] == results[1][0]
    for a, b in zip(results[0][1:], results[1][1:]):
        np.testing.assert_array_equal(a, b)


# ---- finite differences on a tiny head --------------------------------------------

TINY = """[net]
batch=2
subdivisions=1
width=4
height=4
channels=2
learning_rate=0.1
momentum=0
decay=0
policy=constant

[convolutional]
filters=6
size=1
stride=1
pad=0
activation=linear

[yolo]
mask=0
anchors=3,2
num=1
classes=1
iou_loss=mse
iou_normalizer=0.75
ignore_thresh=1
"""
TINY_BOXES = [np.array([[0, 0.30, 0.60, 0.50, 0.40]]), np.array([[0, 0.80, 0.15, 0.90, 0.30], [0, 0.1, 0.9, 0.2, 0.1]])]


def bce(t, p):
    return -(t * np.log(p) + (1 - t) * np.log(1 - p))


def implied_loss(head_in: np.ndarray) -> float:
    """The loss whose negative gradient w.r.t. the head's input darknet's mse deltas are
    (spec D5.3/D5.4): cross-entropy on the logistic entries, squared error on w, h with
    weight scale * iou_normalizer, no objectness term ignored (ignore_thresh=1)."""
    sig = 1 / (1 + np.exp(-head_in.astype(np.float64)))
    grid, loss = 4, 0.0
    for b, boxes in enumerate(TINY_BOXES):
        v = head_in[b].astype(np.float64)
        obj_t = np.zeros((grid, grid))
        for _, x, y, w, h in boxes:
            i, j = int(x * grid), int(y * grid)
            obj_t[j, i] = 1
            k = (2 - w * h) * 0.75
            loss += k * (bce(x * grid - i, sig[b, 0, j, i]) + bce(y * grid - j, sig[b, 1, j, i]))
            loss += k * 0.5 * ((np.log(w * 4 / 3) - v[2, j, i]) ** 2 + (np.log(h * 4 / 2) - v[3, j, i]) ** 2)
            loss += bce(1, sig[b, 5, j, i])
        loss += bce(obj_t, sig[b, 4]).sum()
    return loss


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = tmp_path_factory.mktemp("yolo") / "tiny.cfg"
    cfg.write_text(TINY)
    rng = np.random.default_rng(5)
    net = dn.Network(cfg, batch=None, fuse=False)
    net.set_param(0, "weights", rng.normal(0, 0.5, 12))
    net.set_param(0, "biases", rng.normal(0, 0.5, 6))
    x = rng.uniform(0, 1, (2, 2, 4, 4)).astype(np.float32)
    yield net, x
    net.close()


def test_mse_delta_is_the_negative_gradient_at_the_head(tiny):
    net, x = tiny
    net.backward(x, TINY_BOXES)
    head_in = net.layer_output(0).astype(np.float64)
    delta = net.layer_delta(1)
    eps, grad = 1e-5, np.zeros_like(head_in)
    for idx in np.ndindex(head_in.shape):
        up, down = head_in.copy(), head_in.copy()
        up[idx] += eps
        down[idx] -= eps
        grad[idx] = (implied_loss(up) - implied_loss(down)) / (2 * eps)
    np.testing.assert_allclose(delta, -grad, atol=1e-5)
    assert (np.abs(delta) > 1e-3).sum() > 30  # every objectness entry and the boxes contribute


def test_mse_gradient_reaches_the_input(tiny):
    net, x = tiny
    _, input_delta = net.backward(x, TINY_BOXES, input_delta=True)

    def loss_at(image):
        net.predict(image)
        return implied_loss(net.layer_output(0))

    eps = 1e-2
    for idx in [(0, 0, 1, 2), (0, 1, 3, 0), (1, 0, 0, 3), (1, 1, 2, 2)]:
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = (loss_at(up) - loss_at(down)) / (2 * eps)
        assert abs(input_delta[idx] + fd) <= 1e-3 * max(1, abs(fd)), (idx, input_delta[idx], -fd)


def test_train_step_logs_the_head_lines_and_checks_boxes(tmp_path, caplog):
    cfg = tmp_path / "tiny.cfg"
    cfg.write_text(TINY.replace("ignore_thresh=1", "ignore_thresh=1\nmax=2"))
    x = np.random.default_rng(2).uniform(0, 1, (2, 2, 4, 4)).astype(np.float32)
    with dn.Network(cfg, batch=None, fuse=False) as net:
        assert net.truths == 12
        with caplog.at_level("DEBUG", logger="darknetpy"):
            net.train_step(x, TINY_BOXES)
        assert "v3 (mse loss, Normalizer: (iou: 0.75, obj: 1.00, cls: 1.00) Region 1 Avg (IOU: " in caplog.text
        for boxes, words in [(TINY_BOXES[:1], "list of 1"), ([TINY_BOXES[0], np.zeros((3, 5))], "at most 2"),
                             ([TINY_BOXES[0], np.array([[0, 0.0, 0.5, 0.1, 0.1]])], "x > 0"),
                             ([TINY_BOXES[0], np.ones((1, 4))], "(k, 5)"), (np.zeros((2, 5)), "(2, 12)")]:
            with pytest.raises(dn.InputError, match=re.escape(words)):
                net.train_step(x, boxes)


# ---- options the oracles do not cover, against NumPy (spec D5.3, D5.4, D5.6) --------------

def tiny_step(tmp_path, yolo_options: str, boxes, classes=1):
    """backward of the tiny head with `yolo_options`: (activated output, delta) of the [yolo] layer."""
    text = TINY.replace("classes=1", f"classes={classes}").replace("filters=6", f"filters={5 + classes}")
    cfg = tmp_path / "opt.cfg"
    cfg.write_text(text.replace("iou_loss=mse\n", "") + yolo_options)
    rng = np.random.default_rng(3)
    with dn.Network(cfg, batch=None, fuse=False) as net:
        net.set_param(0, "weights", rng.normal(0, 0.5, 2 * (5 + classes)))
        net.set_param(0, "biases", rng.normal(0, 0.5, 5 + classes))
        net.backward(rng.uniform(0, 1, (2, 2, 4, 4)).astype(np.float32), boxes)
        return net.layer_output(1).astype(np.float64), net.layer_delta(1).astype(np.float64)


def test_label_smoothing_and_class_multipliers(tmp_path):
    boxes = [np.array([[0, 0.30, 0.60, 0.50, 0.40]]), np.array([[2, 0.80, 0.15, 0.90, 0.30]])]
    out, delta = tiny_step(tmp_path, "iou_loss=mse\nlabel_smooth_eps=0.1\ncounters_per_class=10,40,20\n"
                           "cls_normalizer=0.5\n", boxes, classes=3)
    for b, ((c, x, y, w, h),) in enumerate(boxes):
        i, j, c = int(x * 4), int(y * 4), int(c)
        v, d, m = out[b, :, j, i], delta[b, :, j, i], 40 / [10, 40, 20][c]
        target = np.full(3, 0.05)
        target[c] = 0.95
        expected = target - v[5:]
        expected[c] *= m * 0.5
        np.testing.assert_allclose(d[5:], expected, atol=1e-6)
        np.testing.assert_allclose(d[4], m * (1 - v[4]), atol=1e-6)
        scale = (2 - w * h) * 0.75 * m
        box_t = [x * 4 - i, y * 4 - j, np.log(w * 4 / 3), np.log(h * 4 / 2)]
        np.testing.assert_allclose(d[:4], scale * (np.array(box_t) - v[:4]), rtol=1e-5, atol=1e-6)


def spec_iou_grad(p, t, kind):
    """dx_box_iou of spec D5.3, written from its formulas (boxes as x, y, w, h)."""
    pt, pb, pl, pr = p[1] - p[3] / 2, p[1] + p[3] / 2, p[0] - p[2] / 2, p[0] + p[2] / 2
    tt, tb, tl, tr = t[1] - t[3] / 2, t[1] + t[3] / 2, t[0] - t[2] / 2, t[0] + t[2] / 2
    iw, ih = min(pr, tr) - max(pl, tl), min(pb, tb) - max(pt, tt)
    inter, area = iw * ih, (pb - pt) * (pr - pl)
    union = area + (tb - tt) * (tr - tl) - inter
    cw, ch = max(pr, tr) - min(pl, tl), max(pb, tb) - min(pt, tt)
    d_area = {"t": -(pr - pl), "b": pr - pl, "l": -(pb - pt), "r": pb - pt}
    d_inter = {"t": -iw * (pt > tt), "b": iw * (pb < tb), "l": -ih * (pl > tl), "r": ih * (pr < tr)}
    p_e = {e: (union * d_inter[e] - inter * (d_area[e] - d_inter[e])) / union ** 2 for e in "tblr"}
    g = np.array([p_e["l"] + p_e["r"], p_e["t"] + p_e["b"], p_e["r"] - p_e["l"], p_e["b"] - p_e["t"]])
    if kind in ("diou", "ciou"):
        s, c2 = (p[0] - t[0]) ** 2 + (p[1] - t[1]) ** 2, cw ** 2 + ch ** 2
        dcw_dx, dch_dy = int(pr > tr) - int(pl < tl), int(pb > tb) - int(pt < tt)
        dcw_dw, dch_dh = 0.5 * (pr > tr) + 0.5 * (pl < tl), 0.5 * (pb > tb) + 0.5 * (pt < tt)
        g += [(2 * (t[0] - p[0]) * c2 - 2 * cw * dcw_dx * s) / c2 ** 2,
              (2 * (t[1] - p[1]) * c2 - 2 * ch * dch_dy * s) / c2 ** 2,
              2 * cw * dcw_dw * s / c2 ** 2, 2 * ch * dch_dh * s / c2 ** 2]
        if kind == "ciou":
            da = np.arctan(t[2] / t[3]) - np.arctan(p[2] / p[3])
            v = 4 / np.pi ** 2 * da ** 2
            alpha = v / (1 - inter / union + v + 1e-6)
            g[2:] += alpha * 8 / np.pi ** 2 * da * np.array([p[3], -p[2]])
    return g


@pytest.mark.parametrize("kind", ["iou", "diou", "ciou"])
def test_iou_box_delta_follows_the_spec(tmp_path, kind):
    boxes = [np.array([[0, 0.30, 0.60, 0.50, 0.40]]), np.array([[0, 0.80, 0.15, 0.90, 0.30]])]
    out, delta = tiny_step(tmp_path, f"iou_loss={kind}\n", boxes)
    for b, ((_, x, y, w, h),) in enumerate(boxes):
        i, j = int(x * 4), int(y * 4)
        v = out[b, :4, j, i]
        pred = [(i + v[0]) / 4, (j + v[1]) / 4, np.exp(v[2]) * 3 / 4, np.exp(v[3]) * 2 / 4]
        assert 0 < iou_of(pred, [x, y, w, h])  # overlapping: the IoU part counts
        g = spec_iou_grad(pred, [x, y, w, h], kind) * [1, 1, np.exp(v[2]), np.exp(v[3])] * 0.75
        np.testing.assert_allclose(delta[b, :4, j, i], g, rtol=1e-4, atol=1e-6)


def iou_of(a, b):
    iw = min(a[0] + a[2] / 2, b[0] + b[2] / 2) - max(a[0] - a[2] / 2, b[0] - b[2] / 2)
    ih = min(a[1] + a[3] / 2, b[1] + b[3] / 2) - max(a[1] - a[3] / 2, b[1] - b[3] / 2)
    return 0 if iw < 0 or ih < 0 else iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih)


def test_counters_per_class_needs_one_count_per_class(tmp_path):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(TINY + "counters_per_class=3,4\n")
    with pytest.raises(dn.CfgError, match="counters_per_class= lists 2 values but classes=1"):
        dn.Network(cfg, batch=None)


def test_class_map_is_refused_for_training_only(tmp_path):
    cfg = tmp_path / "map.cfg"
    cfg.write_text(TINY + "map=data/coco9k.map\n")
    with pytest.raises(dn.CfgError, match="map= is not supported for training"):
        dn.Network(cfg, batch=None)
    dn.Network(cfg).close()


def test_focal_loss_and_objectness_smooth(tmp_path):
    """focal_loss: delta_n = ([n=c] - p_n) * 0.5 * g(p_c); objectness_smooth: an assigned slot keeps
    the objectness delta it already has (here -o from the prediction pass, nothing is ignored)."""
    boxes = [np.array([[1, 0.30, 0.60, 0.50, 0.40]]), np.array([[2, 0.80, 0.15, 0.90, 0.30]])]
    out, delta = tiny_step(tmp_path, "iou_loss=mse\nfocal_loss=1\nobjectness_smooth=1\n", boxes, classes=3)
    for b, ((c, x, y, _, _),) in enumerate(boxes):
        i, j, c = int(x * 4), int(y * 4), int(c)
        p = out[b, 5:, j, i]
        pt = p[c] + 1e-15
        g = -(1 - pt) * (2 * pt * np.log(pt) + pt - 1)
        np.testing.assert_allclose(delta[b, 5:, j, i], (np.eye(3)[c] - p) * 0.5 * g, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(delta[b, 4, j, i], -out[b, 4, j, i], atol=1e-7)
