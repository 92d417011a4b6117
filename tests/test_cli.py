"""The darknetpy command line (spec §7): upstream's stdout lines, exit codes, errors."""
import io
import re
import subprocess
import sys

import numpy as np
import pytest

import darknetpy as dn
from darknetpy import cli, imagenet, validation

from conftest import oracle_lines, package_env



def run(capsys, *argv):
    """main() in-process: (exit status, stdout, stderr)."""
    try:
        rc = cli.main([str(a) for a in argv])
    except SystemExit as exc:
        rc = exc.code
    out, err = capsys.readouterr()
    return rc, out, err


def predict_args(colors, *rest):
    return ["classifier", "predict", colors["data"], colors["cfg"], colors["weights"], *rest]


def test_predict_prints_upstream_lines(oracle, colors, capsys):
    image = colors["images"] / "red_03.jpg"
    rc, out, err = run(capsys, *predict_args(colors, image))
    assert rc == 0
    expected = (oracle / "cli" / "classifier_predict_small_cls_20iter.console.txt").read_text().split("\n")
    lines = out.split("\n")
    assert lines[:2] == expected[-6:-4] == [" classes = 4, output in cfg = 0 ", "32 32"]
    assert re.fullmatch(re.escape(str(image)) + r": Predicted in \d+\.\d{6} milli-seconds\.", lines[2])
    assert lines[3:] == expected[-3:] == ["red: 1.000000", "green: 0.000000", ""]
    with dn.Classifier(colors["cfg"], colors["weights"], data=colors["data"]) as clf:
        assert "\n".join(lines[3:5]) == str(clf.predict(image, top=None))   # Python == CLI
    with pytest.raises(ValueError, match="closed"):   # the with block freed the network
        clf.predict(image)


def test_predict_t_flag_and_stdin(colors, capsys, monkeypatch):
    paths = [colors["images"] / "green_00.jpg", colors["images"] / "blue_00.jpg"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{p}\n" for p in paths)))
    rc, out, _ = run(capsys, *predict_args(colors, "-t", 4))
    assert rc == 0
    assert out.count("Predicted in") == 2 and "Enter Image Path" not in out
    assert len([line for line in out.split("\n") if re.fullmatch(r"\w+: \d\.\d{6}", line)]) == 8


def test_flags_anywhere_and_gpus_warns(colors, capsys):
    rc, out, err = run(capsys, "classifier", "predict", "-gpus", "0,1", colors["data"], colors["cfg"],
                       "-t", "1", colors["weights"], colors["images"] / "red_00.jpg")
    assert rc == 0 and out.endswith("red: 1.000000\n")
    assert "CPU only" in err


def test_valid_prints_upstream_lines(oracle, colors, capsys):
    rc, out, _ = run(capsys, "classifier", "valid", colors["data"], colors["cfg"], colors["weights"])
    assert rc == 0
    expected = (oracle / "cli" / "classifier_valid_20iter.console.txt").read_text()
    assert out == expected[expected.index(" TOP calculation..."):]
    assert not out.endswith("\n")
    python = dn.validate_classifier(colors["data"], colors["cfg"], colors["weights"], progress=False)
    assert out.split("\n")[-1] == str(python)                                # Python == CLI
    assert out.split("\n")[2:] == oracle_lines(oracle, "classifier_valid_20iter.console.txt")


def test_valid10_lines_end_with_newline(colors, capsys):
    rc, out, _ = run(capsys, "classifier", "valid10", colors["data"], colors["cfg"], colors["weights"])
    assert rc == 0 and out.endswith("\n") and out.count("\n") == 40 and out.startswith("0: top 1: ")


def test_classify_uses_cfg_imagenet1k_data(colors, capsys, monkeypatch, tmp_path):
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "imagenet1k.data").write_text(colors["data"].read_text())
    monkeypatch.chdir(tmp_path)
    rc, out, _ = run(capsys, "classify", colors["cfg"], colors["weights"], colors["images"] / "red_01.jpg")
    assert rc == 0 and out.split("\n")[3:] == ["red: 1.000000", "green: 0.000000", "blue: 0.000000",
                                               "yellow: 0.000000", ""]


def test_partial_is_byte_identical(oracle, tmp_path, capsys):
    out = tmp_path / "tiny.conv.10"
    rc, _, err = run(capsys, "partial", oracle / "tiny" / "tiny.cfg", oracle / "tiny" / "tiny.weights", out, 10)
    assert rc == 0 and "Loaded 10 layers" in err
    assert out.read_bytes() == (oracle / "partial" / "tiny.conv.10").read_bytes()


def test_errors_are_one_line_with_status_1(colors, capsys, tmp_path):
    rc, out, err = run(capsys, *predict_args(colors, tmp_path / "missing.jpg"))
    assert rc == 1 and err.startswith("darknetpy: error: ") and "missing.jpg" in err
    assert "Traceback" not in err
    rc, _, err = run(capsys, "classifier", "valid", colors["data"], tmp_path / "none.cfg")
    assert rc == 1 and err.count("\n") == 1 and "none.cfg" in err
    rc, _, err = run(capsys, "-v", "classifier", "valid", colors["data"], tmp_path / "none.cfg")
    assert rc == 1 and "Traceback" in err


def test_detector_cfg_is_refused(oracle, colors, capsys):
    rc, out, err = run(capsys, "classifier", "valid", colors["data"], oracle / "yolov4-tiny" / "yolov4-tiny.cfg",
                       oracle / "yolov4-tiny" / "yolov4-tiny.weights")
    assert rc == 1 and out == "" and "[yolo]" in err and "0.001" in err


@pytest.mark.parametrize("argv", [["classifier", "nosuchverb", "a", "b"], ["classifier", "predict"],
                                  ["partial", "a", "b", "c", "x"], ["classifier", "valid", "a", "b", "-thresh"],
                                  ["nosuchcommand"], []])
def test_usage_errors_exit_2(capsys, argv):
    rc, _, err = run(capsys, *argv)
    assert rc == 2 and "usage:" in err


@pytest.mark.parametrize("argv", [[], ["classifier"], ["classifier", "predict"], ["classifier", "valid10"],
                                  ["classifier", "train"], ["classify"], ["partial"], ["imagenet", "prepare"],
                                  ["demo"], ["info"]])
def test_help_everywhere(capsys, argv):
    rc, out, _ = run(capsys, *argv, "--help")
    assert rc == 0 and out.startswith("usage: darknetpy")


def test_ctrl_c_exits_130(colors, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(validation, "validate_classifier", interrupted)
    rc, _, err = run(capsys, "classifier", "valid", colors["data"], colors["cfg"], colors["weights"])
    assert rc == 130


def test_imagenet_prepare_cli(tmp_path, capsys):
    wnids = ["n02119789", "n02100735"]
    rng = np.random.default_rng(1)
    src = imagenet.make_fake_ilsvrc(tmp_path / "dl", wnids, 2, 1,
                                    image_fn=lambda w, i, r: rng.integers(0, 255, (12, 14, 3), np.uint8))
    rc, out, _ = run(capsys, "--no-progress", "imagenet", "prepare", src, tmp_path / "out")
    assert rc == 0 and "complete" in out and (tmp_path / "out" / "imagenet1k.data").is_file()


def test_info(oracle, capsys):
    rc, out, _ = run(capsys, "info", oracle / "cli" / "small_cls.cfg")
    assert rc == 0 and out.startswith("darknetpy ") and "7 cost" in out


def test_module_entry_point(colors, tmp_path):
    """python -m darknetpy: real exit statuses and stdout/stderr separation. It runs outside
    the repository with the package this test imported."""
    image = colors["images"] / "yellow_00.jpg"
    ok = subprocess.run([sys.executable, "-m", "darknetpy", *map(str, predict_args(colors, image))],
                        cwd=tmp_path, env=package_env(), capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0 and ok.stdout.startswith(" classes = 4") and ok.stderr == ""
    bad = subprocess.run([sys.executable, "-m", "darknetpy", "classifier", "predict", "x.data"],
                         cwd=tmp_path, env=package_env(), capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2


def test_predict_goes_on_after_a_bad_path(colors, capsys, monkeypatch, tmp_path):
    paths = [tmp_path / "missing.jpg", colors["images"] / "blue_00.jpg"]
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(f"{p}\n" for p in paths)))
    rc, out, err = run(capsys, *predict_args(colors))
    assert rc == 1 and out.count("Predicted in") == 1 and err.count("darknetpy: error: ") == 1
