"""Classifier training end to end (issue 3): train_step, train_classifier, the loader,
backups/resume/Ctrl-C and the augmentation."""
import re
import struct
import time
from dataclasses import astuple

import cv2
import numpy as np
import pytest

import darknetpy as dn
from darknetpy import _libdarknet
from darknetpy.errors import LabelError
from darknetpy.augment import distort
from darknetpy.train import _Augment, _DecodedImages, augment_image
from conftest import MAXPOOL, conv, hsv_distort_reference

SHAPES = ("hbar", "vbar", "square", "plus")
COLOURS = {"c_red": (0, 0, 1), "c_green": (0, 1, 0), "c_blue": (1, 0, 0), "c_yellow": (0, 1, 1)}  # BGR
LABELS = tuple(COLOURS)
BATCH, ITERS = 16, 400
CFG = """[net]
batch=16
subdivisions=1
width=16
height=16
channels=3
learning_rate=0.1
momentum=0.9
decay=0.0005
policy=constant
max_batches={max_batches}
min_crop=16
max_crop=18
flip=1

""" + conv(8) + MAXPOOL + conv(16) + conv(4, size=1, act="linear", bn=0) + """
[avgpool]

[softmax]
groups=1
"""


def shape_image(label, rng, size=16):
    """A random shape of the label's colour (random brightness), randomly placed on a noisy
    dark background (uint8 BGR)."""
    img = (rng.random((size, size, 3)) * 60).astype(np.uint8)
    colour = (np.array(COLOURS[label]) * rng.integers(140, 256) + rng.integers(0, 50, 3)).clip(0, 255)
    kind = SHAPES[rng.integers(len(SHAPES))]
    cy, cx = rng.integers(5, size - 5, 2)
    if kind == "hbar":
        img[cy - 1:cy + 1, 2:size - 2] = colour
    elif kind == "vbar":
        img[2:size - 2, cx - 1:cx + 1] = colour
    elif kind == "square":
        img[cy - 4:cy + 4, cx - 4:cx + 4] = colour
    else:
        img[cy - 1:cy + 1, cx - 5:cx + 5] = colour
        img[cy - 5:cy + 5, cx - 1:cx + 1] = colour
    return img


def make_dataset(root, per_class=40, seed=0, extra_lines=()):
    rng = np.random.default_rng(seed)
    (root / "img").mkdir(parents=True)
    lines = []
    for label in LABELS:
        for i in range(per_class):
            path = root / "img" / f"{label}_{i:03d}.png"
            cv2.imwrite(str(path), shape_image(label, rng))
            lines.append(str(path))
    lines += list(extra_lines)
    (root / "train.list").write_text("\n".join(lines) + "\n")
    (root / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (root / "shapes.data").write_text(f"classes={len(LABELS)}\ntrain={root / 'train.list'}\n"
                                      f"labels={root / 'labels.txt'}\nbackup={root / 'backup'}\n")
    return root / "shapes.data"


def write_cfg(root, max_batches):
    cfg = root / "shapes.cfg"
    cfg.write_text(CFG.format(max_batches=max_batches))
    return cfg


def accuracy(cfg, weights, seed=1, n=25):
    rng = np.random.default_rng(seed)
    x, truth = [], []
    for k, label in enumerate(LABELS):
        for _ in range(n):
            x.append(dn.to_chw(shape_image(label, rng)))
            truth.append(k)
    with dn.Network(cfg, weights) as net:
        p = net.predict(np.stack(x))
    return float(np.mean(p.argmax(1) == np.array(truth)))


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("shapes")
    data = make_dataset(root)
    cfg = write_cfg(root, ITERS)
    result = dn.train_classifier(data, cfg, seed=3, progress=False)
    return root, data, cfg, result


def test_trains_to_high_accuracy(trained):
    root, _, cfg, result = trained
    assert result.final_weights == root / "backup" / "shapes_final.weights"
    assert result.iterations == ITERS and len(result.loss_history) == ITERS
    assert result.skipped_images == 0
    assert np.mean(result.loss_history[-20:]) < 0.5 * np.mean(result.loss_history[:20])
    assert accuracy(cfg, result.final_weights) >= 0.9
    seen = struct.unpack("<Q", result.final_weights.read_bytes()[12:20])[0]
    assert seen == ITERS * BATCH
    # _last every 100 iterations, no _<n> before 1000
    assert sorted(p.name for p in (root / "backup").iterdir()) == ["shapes_final.weights", "shapes_last.weights"]


def test_resume_and_clear(trained, tmp_path):
    root, data, cfg, result = trained
    again = dn.train_classifier(data, cfg, result.final_weights, max_batches=ITERS + 3,
                                backup_dir=tmp_path, progress=False, seed=0)
    assert again.iterations == 3  # resumed from the weights' seen
    cleared = dn.train_classifier(data, cfg, result.final_weights, clear=True, max_batches=2,
                                  backup_dir=tmp_path, progress=False, seed=0)
    assert cleared.iterations == 2
    assert struct.unpack("<Q", cleared.final_weights.read_bytes()[12:20])[0] == 2 * BATCH


def test_train_save_load_predict_identical(tmp_path):
    cfg = write_cfg(tmp_path, 10)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 3, 16, 16), dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, BATCH)]
    with dn.Network(cfg, batch=None) as net:
        for _ in range(5):
            net.train_step(x, y)
        before = net.predict(x[:7])
        net.save_weights(tmp_path / "t.weights")
    with dn.Network(cfg, tmp_path / "t.weights", batch=1, fuse=False) as loaded:
        np.testing.assert_array_equal(loaded.predict(x[:7]), before)
    with dn.Network(cfg, tmp_path / "t.weights") as fused:
        np.testing.assert_allclose(fused.predict(x[:7]), before, atol=1e-5)


def test_phase_times_split_the_step(tmp_path):
    cfg = write_cfg(tmp_path, 10)
    rng = np.random.default_rng(0)
    x = rng.random((BATCH, 3, 16, 16), dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, BATCH)]
    with dn.Network(cfg, batch=None) as net:
        t0 = time.perf_counter()
        net.train_step(x, y)
        wall = time.perf_counter() - t0
        phases = net._handle.phase_times()
        assert all(t > 0 for t in phases) and sum(phases) <= wall
        net.backward(x, y)
        assert net._handle.phase_times()[2] == 0


def test_loader_threads_do_not_change_the_run(tmp_path):
    """The draws are made in order before the images are split across threads."""
    data = make_dataset(tmp_path, per_class=3)
    cfg = write_cfg(tmp_path, 3)
    runs = [dn.train_classifier(data, cfg, progress=False, seed=5, loader_threads=k, backup_dir=tmp_path / str(k))
            for k in (1, 3)]
    assert runs[0].loss_history == runs[1].loss_history


def test_loader_skips_bad_and_missing_images(tmp_path, caplog):
    bad = tmp_path / "img_extra" / "c_red_corrupt.png"
    bad.parent.mkdir()
    bad.write_bytes(b"not an image at all")
    missing = tmp_path / "img_extra" / "c_blue_missing.png"
    data = make_dataset(tmp_path, per_class=2, extra_lines=[str(bad), str(missing)] * 4)
    cfg = write_cfg(tmp_path, 4)
    with caplog.at_level("WARNING", logger="darknetpy"):
        result = dn.train_classifier(data, cfg, progress=False, seed=0)
    assert result.iterations == 4
    assert result.skipped_images > 0
    text = caplog.text
    assert str(bad) in text and str(missing) in text


def test_refuses_unlabelled_and_ambiguous_paths(tmp_path):
    odd = tmp_path / "c_red_and_c_blue.png"
    cv2.imwrite(str(odd), shape_image("c_red", np.random.default_rng(0)))
    data = make_dataset(tmp_path, per_class=2, extra_lines=[str(odd)])
    cfg = write_cfg(tmp_path, 1)
    with pytest.raises(LabelError, match="2 or more labels"):
        dn.train_classifier(data, cfg, progress=False)
    result = dn.train_classifier(data, cfg, allow_ambiguous=True, progress=False, seed=0)
    assert result.iterations == 1


@pytest.mark.parametrize("key", ["mosaic", "mixup", "cutmix", "blur"])
def test_batch_mixing_is_refused_for_classifiers(tmp_path, key):
    data = make_dataset(tmp_path, per_class=1)
    cfg = write_cfg(tmp_path, 1)
    cfg.write_text(cfg.read_text().replace("[net]\n", f"[net]\n{key}=1\n", 1))
    with pytest.raises(dn.CfgError, match=rf"shapes.cfg:2: {key}=1 is not supported for classifier training"):
        dn.train_classifier(data, cfg, progress=False)


def test_classes_must_match_the_network(tmp_path):
    data = make_dataset(tmp_path, per_class=1)
    data.write_text(data.read_text().replace("classes=4", "classes=5"))
    (tmp_path / "labels.txt").write_text("\n".join(LABELS + ("extra",)) + "\n")
    with pytest.raises(dn.CfgError, match="doesn't match to classes = 5"):
        dn.train_classifier(data, write_cfg(tmp_path, 1), progress=False)


def test_darknet_log_format(tmp_path, capsys):
    data = make_dataset(tmp_path, per_class=2)
    dn.train_classifier(data, write_cfg(tmp_path, 2), darknet_log=True, seed=0)
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == ["shapes", "1", "Learning Rate: 0.1, Momentum: 0.9, Decay: 0.0005", "8"]
    assert re.fullmatch(r"Loaded: \d+\.\d{6} seconds", out[4])
    line = re.compile(r"(\d+), (\d+\.\d{3}): \d+\.\d{6}, \d+\.\d{6} avg, 0\.100000 rate, \d+\.\d{6} seconds, "
                      r"(\d+) images, \d+\.\d{6} hours left")
    m = line.fullmatch(out[5])
    assert m and m.group(1) == "1" and m.group(2) == "2.000" and m.group(3) == str(BATCH)
    assert line.fullmatch(out[7]).group(1) == "2"


def test_ctrl_c_saves_last_and_reraises(tmp_path):
    data = make_dataset(tmp_path, per_class=2)

    def interrupt(status):
        if status.iteration == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        dn.train_classifier(data, write_cfg(tmp_path, 50), progress=False, seed=0, callbacks=[interrupt])
    last = tmp_path / "backup" / "shapes_last.weights"
    assert struct.unpack("<Q", last.read_bytes()[12:20])[0] == 3 * BATCH
    assert not (tmp_path / "backup" / "shapes_final.weights").exists()


def test_callback_can_stop_early(tmp_path):
    data = make_dataset(tmp_path, per_class=2)
    result = dn.train_classifier(data, write_cfg(tmp_path, 50), progress=False, seed=0,
                                 callbacks=[lambda s: s.iteration >= 2])
    assert result.iterations == 2 and result.final_weights.exists()


def aug(**kw):
    base = dict(width=8, height=8, min_crop=8, max_crop=8, angle=0, aspect=1, flip=False, hue=0, saturation=1,
                exposure=1)
    base.update(kw)
    return _Augment(**base)


def test_augment_identity_and_flip():
    bgr = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    rgb = bgr[:, :, ::-1].astype(np.float32) / 255
    out = augment_image(bgr, aug(), np.random.default_rng(0))
    np.testing.assert_allclose(out, rgb.transpose(2, 0, 1), atol=1e-6)
    flips = [augment_image(bgr, aug(flip=True), np.random.default_rng(s)) for s in range(8)]
    mirrored = [np.allclose(f, rgb[:, ::-1].transpose(2, 0, 1), atol=1e-6) for f in flips]
    assert any(mirrored) and not all(mirrored)


def test_augment_scales_and_resizes_to_the_network():
    bgr = np.random.default_rng(1).integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = augment_image(bgr, aug(width=12, height=10, min_crop=12, max_crop=24, angle=10, aspect=1.2,
                                 flip=True, hue=0.1, saturation=1.5, exposure=1.5), np.random.default_rng(2))
    assert out.shape == (3, 10, 12) and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1


def augment_reference(bgr, a, u):
    """NumPy, from spec §5.5: the crop's affine map from the draws u, bilinear samples of the RGB
    image (zeros outside), the mirror, the HSV jitter in float64 and resize_image."""
    h, w = bgr.shape[:2]
    size = max(a.width, a.height)

    def scale(s, v, invert):
        lo, hi = (1.0, s) if s >= 1 else (s, 1.0)
        v = lo + (hi - lo) * v
        return 1 / v if invert < 0.5 else v

    aspect = scale(a.aspect, u[0], u[1])
    lo, hi = sorted((a.min_crop, a.max_crop))
    sigma = min(lo + int(u[2] * (hi - lo + 1)), hi) / max(int(min(h, w * aspect)), 1)
    theta = np.radians(a.angle * (2 * u[3] - 1))
    dx = max(0.0, (w * sigma / aspect - size) / 2) * (2 * u[4] - 1)
    dy = max(0.0, (h * sigma - size) / 2) * (2 * u[5] - 1)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float64)
    if a.flip and u[6] < 0.5:
        xs = size - 1 - xs
    px, py = aspect * (xs - size / 2 + dx) / sigma, (ys - size / 2 + dy) / sigma
    sx = np.cos(theta) * px - np.sin(theta) * py + w / 2
    sy = np.sin(theta) * px + np.cos(theta) * py + h / 2
    rgb = bgr[:, :, ::-1].astype(np.float64) / 255
    x0, y0 = np.floor(sx).astype(int), np.floor(sy).astype(int)
    out = np.zeros((size, size, 3))
    for oy in (0, 1):
        for ox in (0, 1):
            x, y = x0 + ox, y0 + oy
            weight = (sx - x0 if ox else 1 - (sx - x0)) * (sy - y0 if oy else 1 - (sy - y0))
            inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
            out += np.where(inside, weight, 0)[..., None] * rgb[np.clip(y, 0, h - 1), np.clip(x, 0, w - 1)]
    out = out.astype(np.float32)
    jitter = (a.hue * (2 * u[7] - 1), scale(a.saturation, u[8], u[9]), scale(a.exposure, u[10], u[11]))
    if jitter != (0, 1, 1):
        out = hsv_distort_reference(out, *jitter).astype(np.float32)
    chw = np.ascontiguousarray(out.transpose(2, 0, 1))
    return chw if (a.height, a.width) == (size, size) else _libdarknet.resize_image(chw, a.width, a.height)


@pytest.mark.parametrize("settings", [
    dict(width=20, height=20, min_crop=20, max_crop=20),
    dict(width=20, height=20, min_crop=14, max_crop=40, angle=25, aspect=1.3, flip=True, hue=0.4, saturation=1.5,
         exposure=1.6),
    dict(width=16, height=12, min_crop=10, max_crop=30, angle=50, aspect=0.8, flip=True, hue=0.1, saturation=0.6,
         exposure=1.2),
])
def test_augment_matches_numpy(settings):
    """The engine's one-pass augmentation against NumPy bilinear sampling and the float64 HSV
    conversion, for many draws: rotations and shifts that reach outside the image, flips, hue
    wraps in both directions, a non-square network."""
    rng = np.random.default_rng(7)
    bgr = rng.integers(0, 256, (23, 31, 3), dtype=np.uint8)
    bgr[0, :4] = 128  # grey pixels: hue undefined
    a = aug(**settings)
    outside = 0
    for _ in range(12):
        u = rng.random(_libdarknet.AUGMENT_DRAWS)
        out = np.empty((3, a.height, a.width), np.float32)
        _libdarknet.augment_classifier(bgr, astuple(a), u, out)
        expected = augment_reference(bgr, a, u)
        outside += (expected == 0).all(axis=0).any()
        np.testing.assert_allclose(out, expected, atol=2e-5)
    assert outside or settings["min_crop"] == 20


def test_augment_refuses_wrong_shapes():
    with pytest.raises(ValueError, match="augment_classifier takes"):
        _libdarknet.augment_classifier(np.zeros((4, 4, 4), np.uint8), astuple(aug()),
                                       np.zeros(_libdarknet.AUGMENT_DRAWS), np.zeros((3, 8, 8), np.float32))
    with pytest.raises(ValueError, match="augment_classifier takes"):
        _libdarknet.augment_classifier(np.zeros((4, 4, 3), np.uint8), astuple(aug()),
                                       np.zeros(_libdarknet.AUGMENT_DRAWS), np.zeros((3, 4, 8), np.float32))


def test_decoded_images_stay_within_the_budget(tmp_path):
    paths = []
    for k in range(3):
        paths.append(str(tmp_path / f"{k}.png"))
        cv2.imwrite(paths[-1], np.full((32, 32, 3), 40 * k, np.uint8))  # 3 KiB decoded
    images = _DecodedImages(5 / 1024)  # room for one
    first, _ = images.read(0, paths[0])
    assert images.read(0, paths[0])[0] is first  # kept
    second, _ = images.read(1, paths[1])
    assert images.read(1, paths[1])[0] is not second and int(second[0, 0, 0]) == 40  # no room: decoded again
    assert images.read(2, str(tmp_path / "missing.png"))[0] is None


def test_hsv_roundtrip_and_exposure():
    rgb = np.random.default_rng(3).random((6, 6, 3), dtype=np.float32)
    rgb[0, 0] = 0.5  # grey pixel: hue undefined, saturation 0
    chw = rgb.transpose(2, 0, 1)
    np.testing.assert_allclose(distort(chw, 0.0, 1.0, 1.0), chw, atol=1e-6)
    np.testing.assert_allclose(distort(chw, 0.0, 1.0, 0.5), chw * 0.5, atol=1e-6)
    full_turn = distort(chw, 0.999999, 1.0, 1.0)
    np.testing.assert_allclose(full_turn, chw, atol=1e-4)


def test_progress_bar_on_stderr(tmp_path, capsys):
    data = make_dataset(tmp_path, per_class=2)
    dn.train_classifier(data, write_cfg(tmp_path, 3), progress=True, seed=0)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "3/3" in captured.err and "img_s=" in captured.err and "avg=" in captured.err
