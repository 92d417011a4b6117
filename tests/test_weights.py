"""Weights I/O (spec §2): byte-identical round trip, partial files identical to upstream's."""
import numpy as np
import pytest

import darknetpy as dn


@pytest.mark.parametrize("name", ["tiny", "yolov4-tiny"])
def test_save_of_load_is_byte_identical(oracle, tmp_path, name):
    folder = oracle / name
    src = folder / f"{name}.weights"
    net = dn.Network(folder / f"{name}.cfg", src, fuse=True)  # fusion must not leak into saved files
    net.predict(np.zeros(net.input_shape, np.float32))  # prepares the fused copies
    out = tmp_path / "copy.weights"
    net.save_weights(out)
    assert out.read_bytes() == src.read_bytes()
    assert not (tmp_path / "copy.weights.part").exists()


@pytest.mark.parametrize("name,n", [("tiny", 10), ("yolov4-tiny", 29)])
def test_partial_is_byte_identical_to_upstream(oracle, tmp_path, name, n):
    folder = oracle / name
    out = tmp_path / f"{name}.conv.{n}"
    loaded = dn.partial(folder / f"{name}.cfg", folder / f"{name}.weights", out, n)
    assert loaded == n
    assert out.read_bytes() == (oracle / "partial" / f"{name}.conv.{n}").read_bytes()


def test_short_file_loads_what_it_holds(oracle, tmp_path, caplog):
    folder = oracle / "tiny"
    net = dn.Network(folder / "tiny.cfg", batch=1, fuse=False)
    # a partial file ending after layer 9's record: the loop stops at the next layer that reads (spec §2.3)
    with caplog.at_level("INFO", logger="darknetpy"):
        assert net.load_weights(oracle / "partial" / "tiny.conv.10") == 10
    # a partial cut is what it is meant to be: no warning, only a note that it is partial
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    assert "loaded the first 10 layers (a partial cut)" in caplog.text
    cut = tmp_path / "cut.weights"
    cut.write_bytes((oracle / "partial" / "tiny.conv.10").read_bytes()[:-4])  # ends inside a layer
    caplog.clear()
    assert net.load_weights(cut) == 9
    assert "is too short: it ends inside layer" in caplog.text
    header_only = tmp_path / "header.weights"
    header_only.write_bytes((oracle / "partial" / "tiny.conv.10").read_bytes()[:20])
    assert net.load_weights(header_only) == 0


def test_layer_weight_counts_sum_to_file_size(oracle):
    folder = oracle / "yolov4-tiny"
    net = dn.Network(folder / "yolov4-tiny.cfg", batch=1)
    total = sum(layer.n_weights for layer in net.layers)
    assert 20 + 4 * total == (folder / "yolov4-tiny.weights").stat().st_size


def test_darknet19_sizes_match_spec(shared, tmp_path):
    """Spec §2.2's worked size check: darknet19 saves 83,427,124 bytes; a 13-layer partial 7,933,844."""
    net = dn.Network(shared / "darknet" / "cfg" / "darknet19.cfg", batch=1, fuse=False)
    net.save_weights(tmp_path / "full.weights")
    net.save_weights(tmp_path / "conv13", upto=13)
    assert (tmp_path / "full.weights").stat().st_size == 83_427_124
    assert (tmp_path / "conv13").stat().st_size == 7_933_844
    head = (tmp_path / "full.weights").read_bytes()[:20]
    assert np.frombuffer(head[:12], "<i4").tolist() == [0, 2, 5]


def test_seen_counter_round_trips(oracle, tmp_path):
    folder = oracle / "tiny"
    net = dn.Network(folder / "tiny.cfg", folder / "tiny.weights")
    net.set_counters(seen=640, iteration=640)
    net.save_weights(tmp_path / "w")
    # seen is recomputed from the iteration count on save (spec §2.1): 640 iterations x batch 1
    assert np.frombuffer((tmp_path / "w").read_bytes()[12:20], "<u8")[0] == 640
    assert dn.Network(folder / "tiny.cfg", tmp_path / "w").seen == 640
