"""darknetpy.classifier: predict/valid as upstream's classifier (spec §6), checked against
upstream's console output for ../shared/oracle/cli + ../shared/oracle/colors."""
import cv2
import numpy as np
import pytest

import darknetpy as dn
from darknetpy.errors import CfgError, LabelError
from darknetpy.results import c_float

from conftest import COLOURS, VALID_ORDER, oracle_lines

@pytest.fixture(scope="module")
def clf(colors):
    with dn.Classifier(colors["cfg"], colors["weights"], data=colors["data"]) as c:
        yield c


# --------------------------------------------------------------------------- top-k


def test_top_k_ties_keep_the_lower_index():
    assert dn.top_k(np.array([1, 3, 3, 2, 3], np.float32), 3).tolist() == [1, 2, 4]
    assert dn.top_k(np.array([0.0, -0.0, 0.0], np.float32), 2).tolist() == [0, 1]
    assert dn.top_k(np.array([5, 1], np.float32), 10).tolist() == [0, 1]   # k clamped


def test_top_k_nan_never_displaces():
    nan = np.nan
    assert dn.top_k(np.full(6, nan, np.float32), 5).tolist() == [0, 1, 2, 3, 4]
    # NaN fills the empty slot 0 and stays there; 0.9 then goes before 0.5 only
    assert dn.top_k(np.array([nan, 0.5, 0.9], np.float32), 2).tolist() == [0, 2]
    assert dn.top_k(np.array([0.2, nan, 0.7, 0.1], np.float32), 3).tolist() == [2, 0, 1]


def test_c_float_spells_nan_like_glibc():
    assert c_float(np.float32(0.5)) == "0.500000"
    assert c_float(-np.float32(np.nan)) == "-nan"
    assert c_float(np.float32(np.nan)) == "nan"


# --------------------------------------------------------------------------- predict


def test_predict_reproduces_upstream_lines(oracle, clf, colors):
    expected = (oracle / "cli" / "classifier_predict_small_cls_20iter.console.txt").read_text()
    result = clf.predict(colors["images"] / "red_03.jpg", top=None)
    assert str(result) == "\n".join(expected.rstrip("\n").split("\n")[-2:])
    assert result.pairs()[0][0] == "red" and len(result) == 2
    assert result.path.endswith("red_03.jpg")


def test_numpy_bgr_rgb_float_and_file_agree(clf, colors):
    path = colors["images"] / "blue_04.jpg"
    bgr = cv2.imread(str(path))
    from_file = clf.predict(path, top=4)
    for other in (clf.predict(bgr, top=4), clf.predict(np.ascontiguousarray(bgr[:, :, ::-1]), top=4,
                                                       channel_order="rgb"),
                  clf.predict(dn.load_image(path), top=4), clf.predict(clf.preprocess(path), top=4)):
        np.testing.assert_array_equal(other.output, from_file.output)
        assert other.pairs() == from_file.pairs()
    classified = dn.classify(clf, bgr, top=4)
    assert isinstance(classified, dn.Classification) and list(classified) == from_file.pairs()
    assert dn.classify(clf.network, bgr, top=4, names=list(COLOURS)).pairs() == from_file.pairs()


def test_batches(clf, colors):
    paths = [colors["images"] / n for n in ("red_00.jpg", "green_01.jpg", "yellow_02.jpg")]
    singles = [clf.predict(p, top=3) for p in paths]
    as_list = clf.predict(paths, top=3)
    stacked = clf.predict(np.stack([cv2.imread(str(p)) for p in paths]), top=3)
    floats = clf.predict(np.stack([clf.preprocess(p) for p in paths]), top=3)
    for batch in (as_list, stacked, floats):
        assert [r.pairs() for r in batch] == [r.pairs() for r in singles]
    assert [r.pairs() for r in dn.classify(clf, paths, top=1)] == [[r.pairs()[0]] for r in singles]


def test_bad_inputs_say_what_is_accepted(clf):
    with pytest.raises(TypeError, match="uint8 \\(H, W, 3\\) BGR"):
        clf.predict(np.zeros((10, 10, 3), np.float64))
    with pytest.raises(TypeError):
        clf.predict(42)
    with pytest.raises(dn.InputError, match="transpose"):
        clf.predict(np.zeros((40, 50, 3), np.float32))
    with pytest.raises(FileNotFoundError):
        clf.predict("/nonexistent/x.jpg")


def test_class_count_check(colors, tmp_path):
    data = tmp_path / "three.data"
    data.write_text(f"classes=3\nlabels={colors['root'] / 'labels.txt'}\n")
    with pytest.raises(CfgError, match="num of filters = 4 .* classes = 3"):
        dn.Classifier(colors["cfg"], colors["weights"], data=data)


@pytest.mark.parametrize("cfg,section", [("oracle/yolov4-tiny/yolov4-tiny.cfg", "yolo"),
                                         ("darknet/cfg/yolov2-tiny.cfg", "region")])
def test_detector_pitfall(shared, colors, cfg, section):
    with pytest.raises(CfgError, match=rf"last layer is \[{section}\].*detector.*0\.001"):
        dn.Classifier(shared / cfg, None, data=colors["data"])
    with pytest.raises(CfgError, match="detector"):
        dn.validate_classifier(colors["data"], shared / cfg, None)


def test_detector_network_passed_to_classify(oracle):
    with dn.Network(oracle / "yolov4-tiny" / "yolov4-tiny.cfg") as net:
        with pytest.raises(CfgError, match="detector"):
            dn.classify(net, np.zeros((416, 416, 3), np.uint8))


# --------------------------------------------------------------------------- valid


def test_valid_reproduces_upstream_lines(oracle, colors):
    steps = []
    result = dn.validate_classifier(colors["data"], colors["cfg"], colors["weights"], confusion=True,
                                   progress=False, workers=2, on_step=steps.append)
    assert [s.text for s in steps] == oracle_lines(oracle, "classifier_valid_20iter.console.txt")
    assert str(result) == steps[-1].text
    assert (result.top1, result.topk, result.k, result.count) == (0.5, 0.75, 2, 40)
    np.testing.assert_array_equal(result.per_class, [1, 0, 1, 0])
    np.testing.assert_array_equal(result.class_counts, [10, 10, 10, 10])
    assert result.confusion.sum() == 40 and np.trace(result.confusion) == 20
    assert result.names == COLOURS


def test_valid_refuses_the_shared_path_pitfall(oracle, colors, tmp_path):
    """Upstream's substring rule sees 'red' in '.../shared/...': every image is 'red'."""
    (tmp_path / "v.list").write_text("".join(f"{oracle / 'colors' / 'data' / n}\n" for n in VALID_ORDER))
    data = tmp_path / "pit.data"
    data.write_text(f"classes=4\nvalid={tmp_path / 'v.list'}\nlabels={colors['root'] / 'labels.txt'}\n")
    with pytest.raises(LabelError, match="shared"):
        dn.validate_classifier(data, colors["cfg"], colors["weights"])
    upstream = dn.validate_classifier(data, colors["cfg"], colors["weights"], allow_ambiguous=True,
                                     progress=False)
    assert upstream.class_counts.tolist() == [40, 0, 0, 0]


def test_unlabelled_and_unreadable(colors, tmp_path):
    bad = tmp_path / "broken_red.jpg"
    bad.write_bytes(b"not a jpeg")
    lines = [colors["images"] / "red_00.jpg", bad, tmp_path / "nolabel.jpg"]
    (tmp_path / "v.list").write_text("".join(f"{p}\n" for p in lines))
    data = tmp_path / "u.data"
    data.write_text(f"classes=4\nvalid={tmp_path / 'v.list'}\nlabels={colors['root'] / 'labels.txt'}\n")
    with pytest.raises(LabelError, match="nolabel"):
        dn.validate_classifier(data, colors["cfg"], colors["weights"])
    r = dn.validate_classifier(data, colors["cfg"], colors["weights"], allow_ambiguous=True, progress=False)
    assert r.count == 3 and r.unlabelled == 1 and len(r.unreadable) == 2
    assert r.k == 1


@pytest.mark.parametrize("mode", ["10", "full", "multi", "crop"])
def test_other_modes(colors, mode):
    steps = []
    r = dn.validate_classifier(colors["data"], colors["cfg"], colors["weights"], mode=mode, progress=False,
                              on_step=steps.append)
    assert r.count == 40 and r.mode == mode and 0.25 <= r.top1 <= 1
    assert len(steps) == (1 if mode == "crop" else 40)
    if mode == "crop":
        assert steps[0].text.startswith("Loaded: 40 images in ")


def test_full_mode_is_single_unfused_when_no_crop_is_needed(colors):
    """Images are 64x64 and the net 32x32: resize_min gives the net size, so validfull's
    rebuilt network sees the same input as valid (up to BN fusion)."""
    single = dn.validate_classifier(colors["data"], colors["cfg"], colors["weights"], progress=False)
    full = dn.validate_classifier(colors["data"], colors["cfg"], colors["weights"], mode="full",
                                 progress=False)
    assert (full.top1, full.topk) == (single.top1, single.topk)


def test_bad_mode():
    with pytest.raises(ValueError, match="single"):
        dn.validate_classifier("x.data", "x.cfg", None, mode="five")
