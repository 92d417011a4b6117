"""darknetpy.data: .data lexer, list files and the label-substring rule (spec §1.1, §5.5, §6)."""
import random
from pathlib import Path

import numpy as np
import pytest

from darknetpy import data
from darknetpy.errors import CfgError, DarknetError

SHARED = Path(__file__).resolve().parents[2] / "shared"


def write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode())
    return path


# --------------------------------------------------------------------------- files


def test_read_lines_removes_only_the_line_end(tmp_path):
    f = write(tmp_path / "l.txt", "kit fox \r\n\tsetter\n\na\rb\nlast")
    assert data.read_lines(f) == ["kit fox ", "\tsetter", "", "a\rb", "last"]


def test_read_list_skips_empty_lines(tmp_path):
    f = write(tmp_path / "l.list", "a.jpg\n\n b.jpg\r\n\n")
    assert data.read_list(f) == ["a.jpg", " b.jpg"]


@pytest.mark.parametrize("reader", [data.read_lines, data.read_list, data.read_data_cfg])
def test_missing_file_names_the_path(tmp_path, reader):
    with pytest.raises(FileNotFoundError) as info:
        reader(tmp_path / "nope")
    assert info.value.filename == str(tmp_path / "nope")


# --------------------------------------------------------------------------- .data


def test_data_cfg_lexer(tmp_path, caplog):
    f = write(tmp_path / "x.data", (
        "# comment\n"
        " ; also a comment\n"
        "classes = 1 0\r\n"                 # every space deleted: 10
        "train\t=\t/data/my train.list\n"   # inner space deleted too
        "classes=20\n"                      # later duplicate ignored
        "na mes = n.list\n"                 # key collapses to 'names'
        "labels=\n"                          # empty value: line rejected
        "labels=l.list\n"
        "map=a=b\n"                          # first '=' splits
        "top=5#five\n"                       # atoi stops at '#'
        "results\n"))                        # key without value
    cfg = data.read_data_cfg(f)
    assert cfg.classes == 10
    assert cfg.train == "/data/mytrain.list"
    assert cfg.names == "n.list" and cfg.names_or_labels == "n.list"
    assert cfg.labels == "l.list"
    assert cfg.get("map") == "a=b" and cfg.get("results") is None
    assert cfg.get("eval", "voc") == "voc"
    assert cfg.top == 5
    assert cfg.valid == "data/train.list"   # classifier default: valid = data/train.list
    assert "atoi" in caplog.text and "empty value" in caplog.text


def test_data_cfg_defaults(tmp_path):
    cfg = data.read_data_cfg(write(tmp_path / "empty.data", ""))
    assert (cfg.classes, cfg.train, cfg.valid, cfg.labels, cfg.backup, cfg.top) == (
        2, "data/train.list", "data/train.list", "data/labels.list", "/backup/", None)
    assert cfg.names is None and cfg.names_or_labels == "data/labels.list"
    assert cfg.path == tmp_path / "empty.data"


def test_key_without_value_shadows_later_lines(tmp_path):
    # darknet's lookup returns the first entry, whose value is NULL: the default applies.
    assert data.read_data_cfg(write(tmp_path / "x.data", "classes\nclasses=7\n")).classes == 2


@pytest.mark.parametrize("text, words", [("classes=abc\n", "x.data:1: classes=abc"),
                                         ("\ntop=five\n", "x.data:2: top=five"),
                                         ("classes=0\n", "classes >= 1")])
def test_data_cfg_bad_integers(tmp_path, text, words):
    with pytest.raises(CfgError, match=words):
        data.read_data_cfg(write(tmp_path / "x.data", text))


def test_resolve_tries_cwd_then_the_data_folder(tmp_path, monkeypatch):
    folder = tmp_path / "cfg"
    folder.mkdir()
    cfg = data.read_data_cfg(write(folder / "x.data", "labels=l.list\n"))
    monkeypatch.chdir(tmp_path)
    assert cfg.resolve("l.list") == Path("l.list")            # neither exists: as darknet opens it
    write(folder / "l.list", "")
    assert cfg.resolve("l.list") == folder / "l.list"
    write(tmp_path / "l.list", "")
    assert cfg.resolve("l.list") == Path("l.list")            # the current directory wins
    assert cfg.resolve(tmp_path / "abs") == tmp_path / "abs"


@pytest.mark.skipif(not (SHARED / "darknet/cfg/imagenet1k.data").is_file(),
                    reason="shared/darknet is not available")
def test_darknet_imagenet1k_data(monkeypatch):
    cfg = data.read_data_cfg(SHARED / "darknet/cfg/imagenet1k.data")
    assert (cfg.classes, cfg.top, cfg.train) == (1000, 5, "/data/imagenet/imagenet1k.train.list")
    assert cfg.names_or_labels == "data/imagenet.shortnames.list"
    monkeypatch.chdir(SHARED / "darknet")      # darknet runs from its root
    labels = data.read_lines(cfg.resolve(cfg.labels))
    assert len(labels) == 21842 and labels[0] == "n02119789"


# --------------------------------------------------------------------------- labels


def test_substring_rule_sees_directories():
    labels = ["red", "blue"]
    assert data.match_labels("/data/shared/blue/1.jpg", labels) == [0, 1]   # 'red' in 'shared'
    assert data.truth_index("/data/shared/blue/1.jpg", labels) == 0
    assert data.match_labels("/data/set/blue/1.jpg", labels) == [1]
    assert data.truth_index("/data/set/green/1.jpg", labels) == -1
    assert data.match_labels("anything", ["x", ""]) == [1]                 # empty label matches all


def test_truth_vector_with_smoothing():
    labels = ["cat", "dog", "bird", "fish"]
    np.testing.assert_array_equal(data.truth_vector("a/dog/1.jpg", labels, 4), [0, 1, 0, 0])
    t = data.truth_vector("a/dog/1.jpg", labels, 4, smooth_eps=0.1)
    assert t.dtype == np.float32
    on, off = np.float32(1) - np.float32(0.1), np.float32(0.1) / np.float32(3)
    np.testing.assert_array_equal(t, [off, on, off, off])
    np.testing.assert_array_equal(data.truth_vector("dog/cat.jpg", labels, 4, 0.1),
                                  [on, on, off, off])
    np.testing.assert_array_equal(data.truth_vector("x/y.jpg", labels, 4, 0.1), [off] * 4)
    # only the first `classes` labels count
    np.testing.assert_array_equal(data.truth_vector("fish/1.jpg", labels, 3), [0, 0, 0])
    np.testing.assert_array_equal(data.truth_vector("cat/1.jpg", labels, 1, 0.1), [on])


def test_fast_matcher_equals_the_plain_rule():
    rng = random.Random(0)
    alphabet = "ab/c"
    for _ in range(2000):
        labels = ["".join(rng.choices(alphabet, k=rng.randint(0, 3)))
                  for _ in range(rng.randint(1, 5))]
        path = "".join(rng.choices(alphabet, k=rng.randint(0, 12)))
        assert data._Matcher(labels)(path) == data.match_labels(path, labels)


def test_check_labelled_ok():
    check = data.check_labelled(["t/red/1.jpg", "t/blue/2.jpg"], ["red", "blue"])
    assert check.ok and (check.total, check.labelled) == (2, 2)
    assert str(check) == "all 2 image paths match exactly one label"


def test_shared_directory_pitfall():
    paths = [f"/data/shared/{c}/{i}.jpg" for c in ("red", "blue") for i in range(3)]
    with pytest.raises(data.LabelError) as info:
        data.check_labelled(paths, ["red", "blue"])
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, DarknetError)
    assert (error.check.ambiguous, error.check.labelled, error.check.unlabelled) == (3, 3, 0)
    message = str(error)
    assert message.startswith("3 of 6 image paths do not match exactly one label")
    assert "/data/shared/blue/0.jpg  matches 'red', 'blue'" in message
    assert ("the label 'red' also occurs in the directory name 'shared' of '/data/shared/', "
            "which all 6 paths share, so every image matches it") in message
    assert "allow_ambiguous=True" in message
    check = data.check_labelled(paths, ["red", "blue"], allow_ambiguous=True)
    assert not check.ok and check.ambiguous == 3


def test_unlabelled_and_overlapping_labels():
    paths = ["x/wildcat/1.jpg", "x/dog/2.jpg"] + [f"x/other/{i}.jpg" for i in range(7)]
    with pytest.raises(data.LabelError) as info:
        data.check_labelled(paths, ["cat", "wildcat", "dog", ""][:3])
    check = info.value.check
    assert (check.unlabelled, check.ambiguous, check.labelled) == (7, 1, 1)
    assert len(check.unlabelled_examples) == 5
    message = str(info.value)
    assert "7 match no label, e.g.\n    x/other/0.jpg" in message
    assert "the label 'cat' is part of the label 'wildcat'" in message
    assert "directory name 'wildcat'" not in message   # that directory is a label itself
    assert "directory named after its label" in message


def test_empty_label_hint():
    with pytest.raises(data.LabelError, match="label line 2 is empty"):
        data.check_labelled(["a/cat/1.jpg"], ["cat", ""])


def test_label_in_an_unshared_directory_name():
    paths = ["d/red_cars/blue/1.jpg", "d/x/red/2.jpg"]
    with pytest.raises(data.LabelError) as info:
        data.check_labelled(paths, ["red", "blue"])
    assert ("the label 'red' also occurs in the directory name 'red_cars' "
            "(e.g. 'd/red_cars/blue/1.jpg'), so the images below it match it too"
            ) in str(info.value)
