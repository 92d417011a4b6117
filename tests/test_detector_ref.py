"""Box decoding and NMS against an independent NumPy reference (spec D1.3, D2) on random head outputs."""
import numpy as np
import pytest

from darknetpy import Network, _libdarknet

ANCHORS = [(10, 14), (23, 27), (37, 58), (81, 82), (135, 169), (344, 319)]
MASK = (3, 1, 4)
CLASSES = 3


def head_cfg(tmp_path, *, new_coords=0, scale_x_y=1.0, nms_kind="default", w=7, h=5):
    c = len(MASK) * (CLASSES + 5)
    text = (f"[net]\nwidth={w}\nheight={h}\nchannels={c}\n\n[yolo]\nmask={','.join(map(str, MASK))}\n"
            f"anchors={', '.join(f'{a},{b}' for a, b in ANCHORS)}\nclasses={CLASSES}\nnum={len(ANCHORS)}\n"
            f"new_coords={new_coords}\nscale_x_y={scale_x_y}\nnms_kind={nms_kind}\nbeta_nms=0.7\n")
    path = tmp_path / "head.cfg"
    path.write_text(text)
    return path


def logistic(x):
    return 1 / (1 + np.exp(-x))


def ref_decode(raw, net_w, net_h, img_w, img_h, thresh, letter, new_coords, s):
    """get_yolo_detections + correct_yolo_boxes, written from the spec."""
    n, e = len(MASK), CLASSES + 5
    lh, lw = raw.shape[1:]
    v = raw.reshape(n, e, lh, lw).astype(np.float64)
    if not new_coords:
        v[:, [0, 1, 4] + list(range(5, e))] = logistic(v[:, [0, 1, 4] + list(range(5, e))])
    v[:, :2] = s * v[:, :2] - (s - 1) / 2
    if letter:
        if net_w / img_w < net_h / img_h:
            nw, nh = net_w, img_h * net_w // img_w
        else:
            nw, nh = img_w * net_h // img_h, net_h
    else:
        nw, nh = net_w, net_h
    boxes, probs, objs = [], [], []
    for row in range(lh):
        for col in range(lw):
            for a in range(n):
                obj = v[a, 4, row, col]
                if not obj > thresh:
                    continue
                aw, ah = ANCHORS[MASK[a]]
                if new_coords:
                    bw, bh = 4 * v[a, 2, row, col] ** 2 * aw / net_w, 4 * v[a, 3, row, col] ** 2 * ah / net_h
                else:
                    bw, bh = np.exp(v[a, 2, row, col]) * aw / net_w, np.exp(v[a, 3, row, col]) * ah / net_h
                x, y = (col + v[a, 0, row, col]) / lw, (row + v[a, 1, row, col]) / lh
                x = (x - (net_w - nw) / 2 / net_w) / (nw / net_w)
                y = (y - (net_h - nh) / 2 / net_h) / (nh / net_h)
                boxes.append((x, y, bw * net_w / nw, bh * net_h / nh))
                p = obj * v[a, 5:, row, col]
                probs.append(np.where(p > thresh, p, 0))
                objs.append(obj)
    return np.array(boxes).reshape(-1, 4), np.array(objs), np.array(probs).reshape(-1, CLASSES)


def ref_overlap(a, b, kind, beta):
    def ov(x1, w1, x2, w2):
        return min(x1 + w1 / 2, x2 + w2 / 2) - max(x1 - w1 / 2, x2 - w2 / 2)
    ow, oh = ov(a[0], a[2], b[0], b[2]), ov(a[1], a[3], b[1], b[3])
    inter = 0 if ow < 0 or oh < 0 else ow * oh
    union = a[2] * a[3] + b[2] * b[3] - inter
    iou = 0 if inter == 0 or union == 0 else inter / union
    if kind == 0:
        return iou
    cw = max(a[0] + a[2] / 2, b[0] + b[2] / 2) - min(a[0] - a[2] / 2, b[0] - b[2] / 2)
    ch = max(a[1] + a[3] / 2, b[1] + b[3] / 2) - min(a[1] - a[3] / 2, b[1] - b[3] / 2)
    c = cw * cw + ch * ch
    d = (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2
    return iou if c == 0 else iou - (d / c) ** (0.6 if kind == 1 else beta)


def ref_nms(bbox, obj, prob, thresh, kind, beta):
    order = list(range(len(bbox)))
    last = len(order) - 1
    i = 0
    while i <= last:
        if obj[order[i]] == 0:
            order[i], order[last] = order[last], order[i]
            last -= 1
        else:
            i += 1
    total = last + 1
    prob = prob.copy()
    for k in range(prob.shape[1]):
        head = sorted(order[:total], key=lambda r: -prob[r, k])   # Python's sort is stable
        order = head + order[total:]
        for a in range(total):
            if prob[order[a], k] == 0:
                continue
            for b in range(a + 1, total):
                if ref_overlap(bbox[order[a]], bbox[order[b]], kind, beta) > thresh:
                    prob[order[b], k] = 0
    return bbox[order], obj[order], prob[order]


@pytest.mark.parametrize("new_coords,scale", [(0, 1.0), (0, 1.05), (1, 2.0)])
@pytest.mark.parametrize("letter", [False, True])
@pytest.mark.parametrize("img", [(37, 23), (20, 64)])
def test_yolo_decoding_matches_numpy(tmp_path, new_coords, scale, letter, img):
    rng = np.random.default_rng(new_coords * 7 + int(letter) + img[0])
    with Network(head_cfg(tmp_path, new_coords=new_coords, scale_x_y=scale), batch=2) as net:
        raw = rng.normal(0, 2, (2, net.channels, 5, 7)).astype(np.float32)
        if new_coords:
            raw = logistic(raw).astype(np.float32)
        # the input is the head's raw output: the network is 7 x 5 'pixels', one cell each
        net.predict(raw)
        for b in range(2):
            got = net._handle.boxes(b, img[0], img[1], 0.3, 0.5, letter, True, 0, 0, 0)
            want = ref_decode(raw[b], 7, 5, img[0], img[1], 0.3, letter, new_coords, scale)
            assert len(got[0]) == len(want[0]) > 5
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=2e-5, atol=2e-6)
            px = net._handle.boxes(b, img[0], img[1], 0.3, 0.5, letter, False, 0, 0, 0)[0]
            np.testing.assert_allclose(px, want[0] * [img[0], img[1], img[0], img[1]], rtol=2e-5, atol=1e-4)


@pytest.mark.parametrize("kind,beta", [(0, 0.0), (1, 0.0), (2, 0.8)])
@pytest.mark.parametrize("thresh", [0.3, 0.45, 0.6])
def test_nms_matches_numpy(kind, beta, thresh):
    rng = np.random.default_rng(int(thresh * 100) + kind)
    n, classes = 150, 4
    centre = rng.uniform(0.2, 0.8, (n, 2))
    size = rng.uniform(0.05, 0.4, (n, 2))
    bbox = np.hstack([centre, size]).astype(np.float32)
    obj = rng.uniform(0.2, 1, n).astype(np.float32)
    obj[rng.random(n) < 0.15] = 0                       # compaction moves these to the end
    prob = (obj[:, None] * rng.random((n, classes))).astype(np.float32)
    prob[rng.random((n, classes)) < 0.3] = 0
    prob[5:9, 1] = prob[4, 1]                           # ties keep their order (stable sort)
    got = _libdarknet.nms(bbox, obj, prob, thresh, kind, beta)
    want = ref_nms(bbox.astype(np.float64), obj, prob, thresh, kind, beta)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    assert 0 < (got[2] > 0).sum() < (prob > 0).sum()    # something was suppressed, something kept


@pytest.mark.parametrize("seed", range(12))
def test_nms_matches_numpy_on_hard_cases(seed):
    """Scores rounded to two digits (ties across and within classes), zero-size and negative-height boxes,
    negative scores, thresholds 0, -0.1 and 0.9: the engine's sort-free NMS keeps upstream's results."""
    rng = np.random.default_rng(seed)
    n, classes = int(rng.integers(1, 90)), int(rng.integers(1, 6))
    bbox = np.hstack([rng.uniform(0.2, 0.8, (n, 2)), rng.uniform(0.0, 0.5, (n, 2))]).astype(np.float32)
    bbox[rng.random(n) < 0.1, 2] = 0
    bbox[rng.random(n) < 0.1, 3] *= -1
    obj = rng.uniform(0.2, 1, n).astype(np.float32)
    obj[rng.random(n) < 0.15] = 0
    prob = np.round(obj[:, None] * rng.random((n, classes)), 2).astype(np.float32)
    prob[rng.random((n, classes)) < 0.3] = 0
    prob[rng.random((n, classes)) < 0.05] *= -1
    thresh = [0.45, 0.0, -0.1, 0.9][seed % 4]
    kind, beta = [(0, 0.6), (1, 0.6), (2, 0.8)][seed % 3]
    got = _libdarknet.nms(bbox, obj, prob, thresh, kind, beta)
    want = ref_nms(bbox.astype(np.float64), obj, prob, thresh, kind, beta)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)


def test_nms_kind_from_cfg(tmp_path):
    with Network(head_cfg(tmp_path, nms_kind="diounms"), batch=1) as net:
        info = net._handle.detector_info()
    assert (info["layer"], info["classes"], info["nms_kind"]) == (0, CLASSES, 2)
    assert info["beta_nms"] == pytest.approx(0.7)


REGION_ANCHORS = [(0.57, 0.68), (1.87, 2.06), (3.34, 5.47)]


@pytest.mark.parametrize("softmax", [0, 1])
@pytest.mark.parametrize("letter", [False, True])
def test_region_decoding_matches_numpy(tmp_path, softmax, letter):
    n, classes, lw, lh = len(REGION_ANCHORS), 4, 6, 4
    cfg = tmp_path / "region.cfg"
    cfg.write_text(f"[net]\nwidth={lw}\nheight={lh}\nchannels={n * (classes + 5)}\n\n[region]\n"
                   f"anchors={', '.join(f'{a},{b}' for a, b in REGION_ANCHORS)}\nclasses={classes}\ncoords=4\n"
                   f"num={n}\nsoftmax={softmax}\n")
    raw = np.random.default_rng(softmax + 2 * letter).normal(0, 2, (n * (classes + 5), lh, lw)).astype(np.float32)
    img_w, img_h = 50, 31
    with Network(cfg, batch=1) as net:
        assert net._handle.detector_info()["nms_kind"] == 0
        net.predict(raw)
        bbox, obj, prob = net._handle.boxes(0, img_w, img_h, 0.2, 0.5, letter, True, 0, 0, 0)
    # reference (spec D1.5): record (row*lw + col)*n + a, objectness 1, prob = sigmoid(obj) * class
    v = raw.reshape(n, classes + 5, lh, lw).astype(np.float64)
    cls = v[:, 5:]
    if softmax:
        cls = np.exp(cls - cls.max(axis=1, keepdims=True))
        cls = cls / cls.sum(axis=1, keepdims=True)
    nw, nh = lw, lh
    if letter:
        nw, nh = (lw, img_h * lw // img_w) if lw / img_w < lh / img_h else (img_w * lh // img_h, lh)
    want_box, want_prob = [], []
    for row in range(lh):
        for col in range(lw):
            for a, (aw, ah) in enumerate(REGION_ANCHORS):
                x = (col + logistic(v[a, 0, row, col])) / lw
                y = (row + logistic(v[a, 1, row, col])) / lh
                w, h = np.exp(v[a, 2, row, col]) * aw / lw, np.exp(v[a, 3, row, col]) * ah / lh
                want_box.append(((x - (lw - nw) / 2 / lw) * lw / nw, (y - (lh - nh) / 2 / lh) * lh / nh,
                                 w * lw / nw, h * lh / nh))
                p = logistic(v[a, 4, row, col]) * cls[a, :, row, col]
                want_prob.append(np.where(p > 0.2, p, 0))
    np.testing.assert_allclose(bbox, want_box, rtol=2e-5, atol=2e-6)
    np.testing.assert_allclose(prob, want_prob, rtol=2e-5, atol=2e-6)
    assert (obj == 1).all() and (prob > 0).sum() > 10


def wide_view_gather(x, s):
    """upstream's reorg_cpu(forward=0) on x (c, h, w): out[k, j, i] = x viewed as (c/s^2, h*s, w*s)
    at channel k % (c/s^2), row j*s + (k // (c/s^2)) // s, column i*s + (k // (c/s^2)) % s."""
    c, h, w = x.shape
    oc = c // (s * s)
    wide = x.reshape(oc, h * s, w * s)
    out = np.empty_like(x)
    for k in range(c):
        off = k // oc
        out[k] = wide[k % oc, off // s::s, off % s::s][:h, :w]
    return out


def test_old_reorg_follows_upstream_index_formula(tmp_path):
    """[reorg] stride 2 (and reverse=1, its scatter over the reverse layer's own input dims) follow upstream's
    reorg_cpu index formula."""
    cfg = tmp_path / "reorg.cfg"
    cfg.write_text("[net]\nwidth=6\nheight=4\nchannels=8\n\n[reorg]\nstride=2\n\n[reorg]\nstride=2\nreverse=1\n")
    x = np.arange(8 * 4 * 6, dtype=np.float32).reshape(8, 4, 6)
    with Network(cfg, batch=1, keep_outputs=True) as net:
        last = net.predict(x).reshape(8, 4, 6)
        out = net.layer_output(0)
    assert out.shape == (1, 32, 2, 3)
    np.testing.assert_array_equal(out.reshape(8, 4, 6), wide_view_gather(x, 2))
    # reverse=1 scatters: out viewed wide at the same positions receives the input in order
    mid = out.reshape(32, 2, 3)
    np.testing.assert_array_equal(wide_view_gather(last.reshape(32, 2, 3), 2), mid)
