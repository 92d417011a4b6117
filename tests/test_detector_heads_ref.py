"""Box decoding of the [Gaussian_yolo] (spec D1.4), [detection] (YOLOv1, D1.6) and [region]
softmax-tree (D1.5) heads against independent NumPy references on random head outputs,
letterbox on and off. (The [yolo] and plain [region] heads: tests/test_detector_ref.py.)"""
import numpy as np
import pytest

from darknetpy import Network

ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82)]
MASK = (3, 0)
CLASSES = 3


def logistic(x):
    return 1 / (1 + np.exp(-x))


def letterbox_size(net_w, net_h, img_w, img_h, letter):
    if not letter:
        return net_w, net_h
    if net_w / img_w < net_h / img_h:
        return net_w, img_h * net_w // img_w
    return img_w * net_h // img_h, net_h


def correct(box, net_w, net_h, img_w, img_h, letter):
    """correct_yolo_boxes on one relative (x, y, w, h)."""
    nw, nh = letterbox_size(net_w, net_h, img_w, img_h, letter)
    x, y, w, h = box
    return ((x - (net_w - nw) / 2 / net_w) / (nw / net_w), (y - (net_h - nh) / 2 / net_h) / (nh / net_h),
            w * net_w / nw, h * net_h / nh)


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- [Gaussian_yolo]


def ref_gaussian(raw, net_w, net_h, img_w, img_h, thresh, letter, s, point):
    e = CLASSES + 9
    lh, lw = raw.shape[1:]
    v = raw.reshape(len(MASK), e, lh, lw).astype(np.float64)
    squashed = [0, 1, 2, 3, 5, 7] + list(range(8, e))
    v[:, squashed] = logistic(v[:, squashed])
    v[:, [0, 2]] = s * v[:, [0, 2]] - (s - 1) / 2
    boxes, objs, probs = [], [], []
    for row in range(lh):
        for col in range(lw):
            for a, m in enumerate(MASK):
                obj = v[a, 8, row, col]
                if not obj > thresh:
                    continue
                w = np.exp(v[a, 4, row, col]) * ANCHORS[m][0] / net_w
                h = np.exp(v[a, 6, row, col]) * ANCHORS[m][1] / net_h
                x, y = (col + v[a, 0, row, col]) / lw, (row + v[a, 2, row, col]) / lh
                shift = {"center": 0, "left_top": 0.5, "right_bottom": -0.5}[point]
                boxes.append(correct((x + shift * w, y + shift * h, w, h), net_w, net_h, img_w, img_h, letter))
                uc = v[a, [1, 3, 5, 7], row, col].mean()
                p = obj * v[a, 9:, row, col] * (1 - uc)
                probs.append(np.where(p > thresh, p, 0))
                objs.append(obj)
    return np.array(boxes).reshape(-1, 4), np.array(objs), np.array(probs).reshape(-1, CLASSES)


@pytest.mark.parametrize("letter", [False, True])
@pytest.mark.parametrize("scale,point", [(1.0, "center"), (1.1, "left_top"), (1.0, "right_bottom")])
def test_gaussian_yolo_decoding_matches_numpy(tmp_path, letter, scale, point):
    lw, lh, c = 6, 5, len(MASK) * (CLASSES + 9)
    cfg = write(tmp_path, "g.cfg", f"[net]\nwidth={lw}\nheight={lh}\nchannels={c}\n\n[Gaussian_yolo]\n"
                f"mask={','.join(map(str, MASK))}\nanchors={', '.join(f'{a},{b}' for a, b in ANCHORS)}\n"
                f"classes={CLASSES}\nnum={len(ANCHORS)}\nscale_x_y={scale}\nyolo_point={point}\n"
                "nms_kind=cornersnms\nbeta_nms=0.7\n")
    raw = np.random.default_rng(int(letter) + 3 * int(scale * 10)).normal(0, 2, (c, lh, lw)).astype(np.float32)
    img_w, img_h = 41, 23
    with Network(cfg, batch=1) as net:
        info = net._handle.detector_info()
        assert (info["classes"], info["nms_kind"]) == (CLASSES, 0)   # cornersnms: the default's result
        net.predict(raw)
        got = net._handle.boxes(0, img_w, img_h, 0.3, 0.5, letter, True, 0, 0, 0)
        px = net._handle.boxes(0, img_w, img_h, 0.3, 0.5, letter, False, 0, 0, 0)[0]
    want = ref_gaussian(raw, lw, lh, img_w, img_h, 0.3, letter, scale, point)
    assert len(got[0]) == len(want[0]) > 5 and (want[2] > 0).sum() > 3
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(px, want[0] * [img_w, img_h, img_w, img_h], rtol=2e-5, atol=1e-4)


# --------------------------------------------------------------------------- [detection]


@pytest.mark.parametrize("sqrt,softmax", [(1, 0), (0, 1)])
@pytest.mark.parametrize("letter", [False, True])
def test_detection_decoding_matches_numpy(tmp_path, sqrt, softmax, letter):
    side, num, classes = 3, 2, 4
    inputs = side * side * (5 * num + classes)
    cfg = write(tmp_path, "d.cfg", f"[net]\nwidth=1\nheight=1\nchannels={inputs}\n\n[detection]\nclasses={classes}\n"
                f"coords=4\nnum={num}\nside={side}\nsoftmax={softmax}\nsqrt={sqrt}\n")
    rng = np.random.default_rng(sqrt + 2 * softmax)
    raw = rng.uniform(0, 1, inputs).astype(np.float32)
    img_w, img_h = 60, 35
    with Network(cfg, batch=1) as net:
        net.predict(raw.reshape(inputs, 1, 1))
        rel = net._handle.boxes(0, img_w, img_h, 0.2, 0.5, letter, True, 0, 0, 0)
        px = net._handle.boxes(0, img_w, img_h, 0.2, 0.5, letter, False, 0, 0, 0)
    v = raw.astype(np.float64)
    cls = v[:side * side * classes].reshape(side * side, classes)
    if softmax:
        cls = np.exp(cls - cls.max(axis=1, keepdims=True))
        cls /= cls.sum(axis=1, keepdims=True)
    conf = v[side * side * classes:side * side * (classes + num)]
    box = v[side * side * (classes + num):].reshape(-1, 4)
    cells = np.repeat(np.arange(side * side), num)
    want_box = np.stack([(box[:, 0] + cells % side) / side, (box[:, 1] + cells // side) / side,
                         box[:, 2] ** (2 if sqrt else 1), box[:, 3] ** (2 if sqrt else 1)], axis=1)
    p = conf[:, None] * cls[cells]
    want_prob = np.where(p > 0.2, p, 0)
    # every record, no letterbox correction; pixel boxes are upstream's (relative x image size)
    np.testing.assert_allclose(rel[0], want_box, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(px[0], want_box * [img_w, img_h, img_w, img_h], rtol=2e-5, atol=1e-4)
    np.testing.assert_allclose(rel[1], conf, rtol=2e-5)
    np.testing.assert_allclose(rel[2], want_prob, rtol=2e-5, atol=2e-6)
    assert (want_prob > 0).sum() > 5


# --------------------------------------------------------------------------- [region] softmax tree

TREE = [-1, -1, 0, 0, 1, 0, 4, 4, 2, 2]


@pytest.mark.parametrize("letter", [False, True])
def test_region_tree_decoding_matches_numpy(tmp_path, letter):
    """Absolute probabilities (node x ancestors); scanning from the last class down, only the first above
    0.5 stays, unscaled, where the objectness is above thresh (hier_thresh is not used, as upstream)."""
    anchors, classes, lw, lh = [(0.6, 0.7), (1.9, 2.1)], len(TREE), 5, 4
    n = len(anchors)
    tree = write(tmp_path, "t.tree", "".join(f"n{i} {p}\n" for i, p in enumerate(TREE)))
    cfg = write(tmp_path, "r.cfg", f"[net]\nwidth={lw}\nheight={lh}\nchannels={n * (classes + 5)}\n\n[region]\n"
                f"anchors={', '.join(f'{a},{b}' for a, b in anchors)}\nclasses={classes}\ncoords=4\nnum={n}\n"
                f"softmax=1\ntree={tree}\n")
    raw = np.random.default_rng(int(letter)).normal(0, 3, (n * (classes + 5), lh, lw)).astype(np.float32)
    img_w, img_h, thresh = 30, 47, 0.4
    with Network(cfg, batch=1) as net:
        net.predict(raw)
        bbox, obj, prob = net._handle.boxes(0, img_w, img_h, thresh, 0.9, letter, True, 0, 0, 0)
    v = raw.reshape(n, classes + 5, lh, lw).astype(np.float64)
    starts = [i for i in range(classes) if i == 0 or TREE[i] != TREE[i - 1]] + [classes]
    want_box, want_prob = [], []
    for row in range(lh):
        for col in range(lw):
            for a, (aw, ah) in enumerate(anchors):
                cls = v[a, 5:, row, col].copy()
                for lo, hi in zip(starts, starts[1:]):
                    e = np.exp(cls[lo:hi] - cls[lo:hi].max())
                    cls[lo:hi] = e / e.sum()
                absolute = cls.copy()
                for j, parent in enumerate(TREE):
                    if parent >= 0:
                        absolute[j] *= absolute[parent]
                kept = np.zeros(classes)
                above = [j for j in range(classes) if absolute[j] > 0.5]
                if above and logistic(v[a, 4, row, col]) > thresh:
                    kept[above[-1]] = absolute[above[-1]]
                want_prob.append(kept)
                box = ((col + logistic(v[a, 0, row, col])) / lw, (row + logistic(v[a, 1, row, col])) / lh,
                       np.exp(v[a, 2, row, col]) * aw / lw, np.exp(v[a, 3, row, col]) * ah / lh)
                want_box.append(correct(box, lw, lh, img_w, img_h, letter))
    np.testing.assert_allclose(bbox, want_box, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(prob, want_prob, rtol=2e-5, atol=2e-6)
    assert (obj == 1).all() and 5 < (prob > 0).sum() < len(prob)
