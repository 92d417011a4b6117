"""Every upstream cfg builds with upstream's per-layer shapes, or is refused with
a CfgError naming what is unsupported (the list below, each with its reason)."""
import re

import pytest

import darknetpy as dn
from conftest import SHARED

# cfg name (subfolders flattened with "_") -> what the CfgError must mention
REFUSED = {
    # recurrent layers are out of scope (upstream itself dies parsing these five)
    "rnn": "[rnn]", "rnn.train": "[rnn]", "gru": "[gru]", "lstm.train": "[lstm]", "crnn.train": "[crnn]",
    "yolov3-tiny_occlusion_track": "[crnn]",
    # binary (xnor) convolutions
    "yolov1_xyolo.test": "xnor", "darknet53_448_xnor": "xnor", "tiny-yolo_xnor": "xnor", "yolov3-tiny_xnor": "xnor",
    # contrastive learning (a training-only head)
    "yolov4-tiny_contrastive": "[contrastive]",
    # upstream asserts here: a shortcut adds layers of different spatial sizes
    "resnet50": "[shortcut]", "resnet101": "[shortcut]", "resnet152": "[shortcut]",
    "resnext152-32x4d": "[shortcut]",
    # broken [yolo] anchors that upstream reads past: a missing comma (31 values), mask 16..19 with num=16
    "cspx-p7-mish_hp": "odd number", "cspx-p7-mish": "mask value 16 is >= num=16",
}


def tree_is_damaged() -> bool:
    """The 9k.tree beside the shared cfgs has zeroed blocks (NUL bytes); yolo9000 builds with an
    intact tree (tests/layers/test_region.py uses a generated one)."""
    tree = SHARED / "darknet" / "cfg" / "9k.tree"
    return tree.is_file() and b"\0" in tree.read_bytes()


if tree_is_damaged():
    REFUSED["yolo9000"] = "damaged"

TYPE_NAMES = {"upsample": "none", "reorg3d": "reorg", "local_avgpool": "avgpool", "reorg": "none"}
ROW = re.compile(r"^\s*(\d+)\s+(\S+)\s+in\s+(\d+) x\s*(\d+) x\s*(\d+)\s+out\s+(\d+) x\s*(\d+) x\s*(\d+)\s+"
                 r"outputs=(\d+)(\s+bn)?")


def cfg_files():
    root = SHARED / "darknet" / "cfg"
    if not root.is_dir():
        return []
    return sorted(root.glob("*.cfg")) + sorted(root.glob("*/*.cfg"))


def cfg_name(path):
    rel = path.relative_to(SHARED / "darknet" / "cfg")
    return "_".join(rel.with_suffix("").parts)


def upstream_rows(name):
    rows = {}
    for line in (SHARED / "oracle" / "cfg-shapes" / f"{name}.shapes").read_text().splitlines():
        m = ROW.match(line)
        if m:
            rows[int(m.group(1))] = m
    return rows


def assert_layer_like_upstream(layer, row):
    """One layer against its upstream .shapes row: type name, output shape and size, BN."""
    assert row.group(2) == TYPE_NAMES.get(layer.type, layer.type), layer
    out_c, out_h, out_w, outputs = (int(row.group(i)) for i in (6, 7, 8, 9))
    assert (layer.output_shape, layer.outputs) == ((out_c, out_h, out_w), outputs), layer
    assert layer.batch_normalize == bool(row.group(10)), layer


@pytest.mark.parametrize("path", cfg_files(), ids=cfg_name)
def test_cfg_builds_like_upstream(path):
    name = cfg_name(path)
    if name in REFUSED:
        with pytest.raises(dn.CfgError) as err:
            dn.Network(path, batch=1, fuse=False)
        assert REFUSED[name] in str(err.value)
        assert str(path) in str(err.value)
        return
    rows = upstream_rows(name)
    with dn.Network(path, batch=1, fuse=False) as net:
        assert len(net.layers) == len(rows)
        for layer in net.layers:
            assert_layer_like_upstream(layer, rows[layer.index])


def test_refused_list_is_current(shared):
    names = {cfg_name(p) for p in cfg_files()}
    assert set(REFUSED) <= names


def upstream_table(name):
    """Upstream's printed layer lines, without its loud-default and unused-field notes."""
    console = (SHARED / "oracle" / "cfg-shapes" / f"{name}.console").read_text()
    start = console.index("   layer")
    table = console[start:console.index("Total BFLOPS")]
    table = re.sub(r"\w+: Using default '[^']*'\n", "", table)
    return [line.rstrip() for line in table.splitlines() if not line.startswith("Unused field")]


@pytest.mark.parametrize("path", [p for p in cfg_files() if cfg_name(p) not in REFUSED], ids=cfg_name)
def test_layer_table_matches_upstream_console(path):
    """repr(net) prints upstream's layer table (spec Appendix A) line for line."""
    with dn.Network(path, batch=1, fuse=False) as net:
        ours = [line.rstrip() for line in net.summary().splitlines()[:-1]]
        assert repr(net).splitlines()[1:-1] == net.summary().splitlines()[:-1]
    assert ours == upstream_table(cfg_name(path))
