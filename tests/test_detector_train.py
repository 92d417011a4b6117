"""Detector training loop (issue 9, spec D7): backups and their schedule, resume, the chart,
mAP during training, the nan guard, multi-scale, the CLI's lines and Ctrl-C."""
import math
import re
import signal
import struct
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

import darknetpy as dn
from darknetpy import detection_data
from darknetpy.cli import main
from darknetpy.detector_train import _MultiScale

from conftest import MAXPOOL, conv, package_env

BATCH = 8
CFG = """[net]
batch=8
subdivisions=2
width=32
height=32
channels=3
learning_rate={lr}
momentum=0.9
decay=0.0005
burn_in={burn_in}
max_batches=1000
policy=constant
hue=0
saturation=1
exposure=1

""" + conv(8) + MAXPOOL + conv(16) + MAXPOOL + conv(16) + MAXPOOL + conv(14, size=1, act="linear", bn=0) + """
[yolo]
mask=0,1
anchors=10,10, 18,18
classes=2
num=2
jitter=.1
ignore_thresh=.7
truth_thresh=1
random={random}
"""
HEAD = 7   # the [yolo] layer


def write_dataset(root, n=24, seed=0):
    """n 40x40 images with one bright square (class 0) or disc (class 1); labels beside them."""
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    paths = []
    for i in range(n):
        img = rng.integers(0, 50, (40, 40, 3), dtype=np.uint8)
        cls, size = i % 2, int(rng.integers(12, 22))
        x0, y0 = (int(v) for v in rng.integers(1, 40 - size, 2))
        if cls == 0:
            img[y0:y0 + size, x0:x0 + size] = (40, 220, 240)
        else:
            cv2.circle(img, (x0 + size // 2, y0 + size // 2), size // 2, (240, 80, 60), -1)
        path = root / "img" / f"s{i:03d}.png"
        cv2.imwrite(str(path), img)
        path.with_suffix(".txt").write_text(f"{cls} {(x0 + size / 2) / 40:.6f} {(y0 + size / 2) / 40:.6f} "
                                            f"{size / 40:.6f} {size / 40:.6f}\n")
        paths.append(str(path))
    (root / "train.txt").write_text("\n".join(paths) + "\n")
    (root / "valid.txt").write_text("\n".join(paths[:8]) + "\n")
    (root / "obj.names").write_text("square\ndisc\n")


def write_data(root, saveweights=4, savelast=2, where=None):
    data = (where or root) / "obj.data"
    data.write_text(f"classes=2\ntrain={root / 'train.txt'}\nvalid={root / 'valid.txt'}\nnames={root / 'obj.names'}\n"
                    f"backup={root / 'backup'}\nsaveweights={saveweights}\nsavelast={savelast}\n")
    return data


def write_cfg(root, name="tiny", lr=0.002, burn_in=20, random=0, extra=""):
    cfg = root / f"{name}.cfg"
    cfg.write_text(CFG.format(lr=lr, burn_in=burn_in, random=random).replace("policy=constant", extra or
                                                                               "policy=constant"))
    return cfg


def header(path):
    """(seen, cur_iteration implied by seen) of a .weights file."""
    return struct.unpack("<Q", path.read_bytes()[12:20])[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """9 iterations with saveweights=4, savelast=2, the files present after each iteration and the
    darknet lines."""
    root = tmp_path_factory.mktemp("det")
    write_dataset(root)
    data, cfg = write_data(root), write_cfg(root)
    files = {}

    def record(status):
        files[status.iteration] = sorted(p.name for p in (root / "backup").iterdir() if p.suffix == ".weights")

    import contextlib
    import io
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = dn.train_detector(data, cfg, max_batches=9, darknet_log=True, seed=1, callbacks=[record])
    return root, data, cfg, result, files, out.getvalue()


def test_backups_follow_upstreams_schedule(run):
    root, _, _, result, files, _ = run
    assert result.iterations == 9 and result.final_weights == root / "backup" / "tiny_final.weights"
    assert files[1] == []
    assert files[2] == files[3] == ["tiny_last.weights"]
    assert files[4] == ["tiny_4.weights", "tiny_last.weights"]
    assert files[8] == files[9] == ["tiny_4.weights", "tiny_8.weights", "tiny_last.weights"]
    assert header(root / "backup" / "tiny_last.weights") == 8 * BATCH
    assert header(root / "backup" / "tiny_4.weights") == 4 * BATCH
    assert header(result.final_weights) == 9 * BATCH
    chart = cv2.imread(str(result.chart))
    assert result.chart == root / "backup" / "chart.png" and chart.shape == (700, 1000, 3)
    assert (chart[:, :, 0] > 150).any()   # the blue loss curve (BGR)
    assert not list((root / "backup").glob(".*"))   # atomic writes leave no temporary file behind


def test_darknet_lines(run):
    *_, out = run
    lines = out.splitlines()
    assert lines[:3] == ["tiny", "Weights are saved after: 4 iterations. Last weights (*_last.weight) are stored "
                                 "every 2 iterations. ", "Learning Rate: 0.002, Momentum: 0.9, Decay: 0.0005"]
    progress = re.compile(r" (\d+): (\d+\.\d{6}), (\d+\.\d{6}) avg loss, (\d+\.\d{6}) rate, \d+\.\d{6} seconds, "
                          r"(\d+) images, (-?\d+\.\d{6}) hours left")
    found = [m for m in map(progress.fullmatch, lines) if m]
    assert [int(m.group(1)) for m in found] == list(range(1, 10))
    assert [int(m.group(5)) for m in found] == [BATCH * i for i in range(1, 10)]
    assert found[0].group(6) == "-1.000000" and found[0].group(2) == found[0].group(3)
    assert float(found[4].group(4)) == pytest.approx(0.002 * (5 / 20) ** 4, abs=1e-6)   # burn_in, power 4
    assert sum(line.startswith("Loaded: ") for line in lines) == 9
    status = [line for line in lines if re.fullmatch(r"\d+/9: loss=\d+\.\d hours left=-?\d+\.\d", line)]
    assert len(status) == 9
    assert lines[-1] == "If you want to train from the beginning, then use flag in the end of training command: -clear "


def test_resume_from_last_continues_the_counters(run, tmp_path):
    root, data, cfg, *_ = run
    rates = []
    resumed = dn.train_detector(data, cfg, root / "backup" / "tiny_last.weights", max_batches=11,
                                backup_dir=tmp_path, seed=2, callbacks=[lambda s: rates.append((s.iteration, s.rate))])
    assert resumed.iterations == 3 and [i for i, _ in rates] == [9, 10, 11]
    assert rates[0][1] == pytest.approx(0.002 * (9 / 20) ** 4, rel=1e-4)   # burn-in goes on from 8
    assert header(resumed.final_weights) == 11 * BATCH
    assert not (tmp_path / "tiny_10.weights").exists() and (tmp_path / "tiny_last.weights").exists()
    cleared = dn.train_detector(data, cfg, root / "backup" / "tiny_last.weights", clear=True, max_batches=2,
                                backup_dir=tmp_path, seed=2)
    assert cleared.iterations == 2 and header(cleared.final_weights) == 2 * BATCH


def test_map_during_training_saves_best(run, tmp_path):
    root, data, cfg, *_ = run
    result = dn.train_detector(data, cfg, map=True, max_batches=3, backup_dir=tmp_path, seed=3)
    assert [i for i, _ in result.maps] == [3]      # every max(4 epochs, 100) from burn_in on, and at the end
    assert result.best_weights == tmp_path / "tiny_best.weights" and result.best_map == result.maps[0][1]
    with np.errstate(over="ignore"):               # boxes of a barely trained net overflow float32 areas
        again = dn.evaluate_detector(data, cfg, result.best_weights)
    assert again.map == pytest.approx(result.best_map, abs=1e-9)
    assert not list(tmp_path.glob(".*"))           # the evaluation's scratch weights are gone


def test_refuses_what_upstream_refuses(run, tmp_path):
    root, data, cfg, *_ = run
    three = tmp_path / "three.data"
    three.write_text(data.read_text().replace("classes=2", "classes=3"))
    with pytest.raises(dn.CfgError, match="classes=3 but \\[yolo\\] layer 7"):
        dn.train_detector(three, cfg, max_batches=1, backup_dir=tmp_path)
    one = tmp_path / "one.cfg"
    one.write_text(cfg.read_text().replace("batch=8", "batch=1").replace("subdivisions=2", "subdivisions=1"))
    with pytest.raises(dn.CfgError, match="incorrect value batch=1 for Training"):
        dn.train_detector(data, one, max_batches=1, backup_dir=tmp_path)
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    with pytest.raises(dn.DarknetError, match="no image paths"):
        dn.train_detector(_with(tmp_path, data, "train", empty), cfg)
    with pytest.raises(dn.DarknetError, match="There is no .*missing.txt file for mAP calculation"):
        dn.train_detector(_with(tmp_path, data, "valid", tmp_path / "missing.txt"), cfg, map=True, max_batches=1,
                          backup_dir=tmp_path)


def _with(tmp_path, data, key, value):
    out = tmp_path / f"{key}.data"
    out.write_text("".join(f"{key}={value}\n" if line.startswith(f"{key}=") else line + "\n"
                           for line in data.read_text().splitlines()))
    return out


def test_loss_decreases_on_a_learnable_set(run, tmp_path):
    root, data, *_ = run
    cfg = write_cfg(tmp_path, lr=0.01, burn_in=5)
    result = dn.train_detector(data, cfg, max_batches=80, backup_dir=tmp_path, seed=4)
    losses = np.array(result.loss_history)
    assert losses[-10:].mean() < 0.5 * losses[:10].mean()


def poison_third_batch(monkeypatch):
    real = detection_data.DetectionLoader.next
    calls = []

    def next_batch(self):
        x, truths = real(self)
        calls.append(1)
        if len(calls) == 3:
            x = x.copy()
            x[-1, 0, 5, 5] = np.nan   # in the last mini-batch, whose head statistics are kept
        return x, truths

    monkeypatch.setattr(detection_data.DetectionLoader, "next", next_batch)


def test_nan_guard_names_iteration_and_head_and_keeps_good_weights(run, tmp_path, monkeypatch):
    root, _, cfg, *_ = run
    data = write_data(root, saveweights=1000, savelast=1, where=tmp_path)
    poison_third_batch(monkeypatch)
    with pytest.raises(dn.LossNotFiniteError, match="input images") as err:
        dn.train_detector(data, cfg, max_batches=6, backup_dir=tmp_path, seed=5)
    e = err.value
    assert e.iteration == 3 and e.layer == HEAD and e.weights == tmp_path / "tiny_last.weights"
    assert f"iteration 3 in [yolo] layer {HEAD}" in str(e) and "burn_in=20" in str(e)
    assert header(e.weights) == 2 * BATCH and not (tmp_path / "tiny_final.weights").exists()
    with dn.Network(cfg, e.weights, batch=None) as net:
        assert all(np.isfinite(net.param(i, "weights")).all() for i in (0, 2, 4, 6))


def test_a_learning_rate_blowup_is_caught_and_nan_ok_goes_on(run, tmp_path):
    root, data, *_ = run
    cfg = write_cfg(tmp_path, lr=1e30, burn_in=0)
    with pytest.raises(dn.LossNotFiniteError, match="learning rate") as err:
        dn.train_detector(data, cfg, max_batches=6, backup_dir=tmp_path, seed=6)
    assert err.value.iteration <= 3 and "learning_rate=1e+30" in str(err.value)
    result = dn.train_detector(data, cfg, max_batches=4, nan_ok=True, backup_dir=tmp_path, seed=6)
    assert result.iterations == 4 and not all(map(math.isfinite, result.loss_history))
    assert result.final_weights.exists()


def test_random_multiscale_sizes(run, tmp_path, capsys, caplog):
    root, data, *_ = run
    cfg = write_cfg(tmp_path, random=1, extra="policy=constant\ndynamic_minibatch=1")
    sizes = {}
    dn.train_detector(data, cfg, max_batches=21, backup_dir=tmp_path, seed=7, darknet_log=True,
                      callbacks=[lambda s: sizes.__setitem__(s.iteration, (s.network.width, s.network.height))])
    out = capsys.readouterr().out
    assert "dynamic_minibatch=1 is not supported: the batch stays 8" in caplog.text
    assert out.count("Resizing, random_coef = 1.40 ") == 3           # iterations 1, 11, 21
    assert sizes[1] == (64, 64)                                       # the largest size first
    assert set(sizes.values()) <= {(32, 32), (64, 64)}
    assert len({sizes[i] for i in range(1, 11)}) == 1 and len({sizes[i] for i in range(11, 21)}) == 1
    scale = _MultiScale(1, 416, 416, 32, np.random.default_rng(0))
    assert scale.pick(True) == (608, 608)                             # round(1.4*416/32 + 1)*32
    picks = {scale.pick(False) for _ in range(200)}
    assert {w for w, _ in picks} <= set(range(320, 609, 32)) and len(picks) > 3


def test_cli_train_and_ctrl_c(run, tmp_path):
    root, data, cfg, *_ = run
    backup = tmp_path / "bk"
    child = subprocess.Popen([sys.executable, "-m", "darknetpy", "detector", "train", str(data), str(cfg), "-dont_show",
                              "--backup-dir", str(backup), "--seed", "1"], cwd=tmp_path, env=package_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        lines.append(child.stdout.readline())
        if lines[-1].startswith(" 5: "):
            break
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=60)
    assert child.returncode == 130, err
    assert "darknetpy: interrupted" in err and "Region 7 Avg (IOU:" in err
    seen = header(backup / "tiny_last.weights")
    assert seen % BATCH == 0 and seen >= 5 * BATCH
    assert not (backup / "tiny_final.weights").exists()
    assert main(["detector", "train", str(data), str(cfg), str(backup / "tiny_last.weights"), "--max-batches",
                 str(seen // BATCH + 1), "--backup-dir", str(backup)]) == 0
    assert header(backup / "tiny_final.weights") == seen + BATCH


def test_progress_bar_on_stderr(run, tmp_path, capsys):
    root, data, cfg, *_ = run
    dn.train_detector(data, cfg, max_batches=3, backup_dir=tmp_path, progress=True, seed=8)
    captured = capsys.readouterr()
    assert captured.out == "" and "3/3" in captured.err and "avg=" in captured.err
