"""[region] (YOLOv2 head), inference: the input transposed to cell-major records
[tx, ty, tw, th, obj, classes...], the logistic on obj and, with softmax=1, a softmax over
the classes, or with tree= a softmax over each run of siblings of the softmax tree; against
NumPy; malformed .tree files; shapes of upstream cfgs. (Box decoding: tests/test_detector_ref.py,
tests/test_detector_heads_ref.py.)"""
import numpy as np
import pytest

import darknetpy as dn
from _harness import assert_matches, assert_shapes_like_upstream, build, cfg_id, on_devices, outputs, \
    random_input, upstream_cfgs


# node parents; groups are the runs of equal parents: [0,1] [2,3] [4] [5] [6,7]
TREE = [-1, -1, 0, 0, 1, 0, 4, 4]


def softmax(v):
    e = np.exp(v - v.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def tree_groups(parents):
    starts = [i for i in range(len(parents)) if i == 0 or parents[i] != parents[i - 1]]
    return list(zip(starts, starts[1:] + [len(parents)]))


def write_tree(path, parents):
    path.write_text("".join(f"n{i:08d} {p}\r\n" for i, p in enumerate(parents)))
    return path


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


def test_tree_softmax_matches_numpy(tmp_path):
    num, classes = 2, len(TREE)
    tree = write_tree(tmp_path / "small.tree", TREE)
    body = f"[region]\nanchors=1,1, 2,3\nclasses={classes}\ncoords=4\nnum={num}\nsoftmax=1\ntree={tree}\n"
    net = build(tmp_path, body, (num * (classes + 5), 3, 2))
    x = random_input(net, scale=3.0)
    want = reference_region(x, num, classes, 0).reshape(len(x), -1, classes + 5)
    for lo, hi in tree_groups(TREE):
        want[..., 5 + lo:5 + hi] = softmax(want[..., 5 + lo:5 + hi])
    assert_matches(outputs(net, x)[0].reshape(len(x), -1), want.reshape(len(x), -1), "region tree")


@pytest.mark.parametrize("content,message", [
    (b"a -1\nb -1\nc 3\n", r"small.tree:3: 'c 3' is not 'name parent_index'"),
    (b"a -1\nb 0\n", r"small.tree has 2 nodes but the \[region\] layer has classes=3"),
    (b"a -1\nb 0\x00\x00\nc 0\n", r"small.tree holds NUL bytes at offset 8: the file is damaged"),
    (None, r"cannot open the softmax tree tree=.*small.tree"),
])
def test_malformed_tree_is_a_cfg_error(tmp_path, content, message):
    tree = tmp_path / "small.tree"
    if content is not None:
        tree.write_bytes(content)
    with pytest.raises(dn.CfgError, match=message):
        build(tmp_path, f"[region]\nclasses=3\ncoords=4\nnum=1\ntree={tree}\n", (8, 2, 2))


def test_yolo9000_builds_with_an_intact_tree(shared, tmp_path):
    """The shared 9k.tree is damaged (zeroed blocks); a well-formed one of 9418 nodes stands in."""
    from test_cfg_shapes import assert_layer_like_upstream, upstream_rows

    rng = np.random.default_rng(0)
    parents = [-1] * 20 + sorted(int(p) for p in rng.integers(0, 20, 9418 - 20))
    cfg = tmp_path / "yolo9000.cfg"
    text = (shared / "darknet" / "cfg" / "yolo9000.cfg").read_text()
    cfg.write_text(text.replace("tree=data/9k.tree", f"tree={write_tree(tmp_path / '9k.tree', parents)}"))
    rows = upstream_rows("yolo9000")
    with dn.Network(cfg, batch=1, fuse=False) as net:
        assert len(net.layers) == len(rows)
        for layer in net.layers:
            assert_layer_like_upstream(layer, rows[layer.index])


@pytest.mark.parametrize("path", upstream_cfgs("region"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "region")
