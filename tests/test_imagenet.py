"""darknetpy.imagenet: ILSVRC-2012 downloads to darknet lists (spec §9), on a generated tree."""
import argparse
import shutil
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from darknetpy import data, imagenet
from darknetpy.errors import CfgError

SHARED = Path(__file__).resolve().parents[2] / "shared"
SYNSETS = ["n02119789", "n02100735", "n02110185"]        # ILSVRC2012_ID 1, 2, 3
COLOURS = {"n02119789": (0, 0, 255), "n02100735": (0, 255, 0), "n02110185": (255, 0, 0)}
TRAIN, VAL = 4, 3
SAFE = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}   # Python < 3.9.17 lacks it


def solid(wnid: str, index: int, rng: np.random.Generator) -> np.ndarray:
    """A BGR image whose colour tells its synset, so sorting can be checked from pixels."""
    return np.full((20 + index, 30, 3), COLOURS[wnid], dtype=np.uint8)


@pytest.fixture(scope="module")
def fake(tmp_path_factory) -> Path:
    return imagenet.make_fake_ilsvrc(tmp_path_factory.mktemp("download"), SYNSETS, TRAIN, VAL,
                                     image_fn=solid)


@pytest.fixture(scope="module")
def prepared(fake, tmp_path_factory) -> tuple[Path, imagenet.PrepareReport]:
    out = tmp_path_factory.mktemp("prepared")
    return out, imagenet.prepare(fake, out)


def colour_of(path: Path) -> tuple[int, ...]:
    return tuple(int(round(c)) for c in cv2.imread(str(path)).reshape(-1, 3).mean(axis=0))


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def test_fake_download_has_the_official_layout(fake):
    with tarfile.open(fake / imagenet.TRAIN_TAR) as outer:
        assert outer.getnames() == [f"{w}.tar" for w in SYNSETS]
        with tarfile.open(fileobj=outer.extractfile(f"{SYNSETS[0]}.tar")) as inner:
            assert inner.getnames() == [f"{SYNSETS[0]}_{i}.JPEG" for i in range(1, TRAIN + 1)]
    with tarfile.open(fake / imagenet.VAL_TAR) as val:
        assert val.getnames() == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 10)]
    truth = (fake / imagenet.DEVKIT_DIR / imagenet.GROUND_TRUTH).read_text().split()
    assert sorted(truth) == ["1"] * VAL + ["2"] * VAL + ["3"] * VAL
    assert [s.wnid for s in imagenet.read_synsets(fake / imagenet.DEVKIT_DIR)] == SYNSETS


def test_round_trip(prepared):
    out, report = prepared
    assert report.complete and report.classes == 3
    assert (report.train.found, report.train.expected, report.train.written) == (12, 12, 12)
    assert (report.val.found, report.val.expected, report.val.written) == (9, 9, 9)
    assert (report.train_boxes, report.val_boxes) == (6, 9)
    for split in ("train", "val"):
        for wnid in SYNSETS:
            images = sorted((out / split / wnid).iterdir())
            assert len(images) == (TRAIN if split == "train" else VAL)
            assert all(np.allclose(colour_of(p), COLOURS[wnid], atol=3) for p in images)
    assert data.read_lines(out / "labels.list") == SYNSETS          # ILSVRC2012_ID order
    assert data.read_lines(out / "names.list") == ["class 1", "class 2", "class 3"]
    valid = data.read_list(out / "valid.list")
    assert [Path(p).name for p in valid] == [f"ILSVRC2012_val_{i:08d}.JPEG" for i in range(1, 10)]
    train = data.read_list(out / "train.list")
    assert len(train) == 12 and train[0] == str(out / "train" / SYNSETS[0] / f"{SYNSETS[0]}_1.JPEG")
    for path in train + valid:
        assert Path(path).is_absolute() and Path(path).is_file()
        assert data.match_labels(path, SYNSETS) == [SYNSETS.index(Path(path).parent.name)]


def test_data_file_reads_back(prepared):
    out, report = prepared
    cfg = data.read_data_cfg(report.data_file)
    assert (cfg.classes, cfg.top) == (3, 5)
    assert (cfg.train, cfg.valid) == (str(out / "train.list"), str(out / "valid.list"))
    assert (cfg.labels, cfg.names) == (str(out / "labels.list"), str(out / "names.list"))
    assert cfg.backup == f"{out / 'backup'}/" and (out / "backup").is_dir()


def test_boxes_csv_and_yolo_files_agree(prepared):
    out, _ = prepared
    rows = data.read_lines(out / imagenet.VAL_CSV)
    assert rows == sorted(rows) and len(rows) == 9
    name, *box = rows[0].split(",")
    x0, y0, x1, y1 = map(float, box)
    wnid = Path(data.read_list(out / "valid.list")[0]).parent.name
    label = (out / "labels" / "val" / wnid / (Path(name).stem + ".txt")).read_text().split()
    assert int(label[0]) == SYNSETS.index(wnid)
    np.testing.assert_allclose([float(v) for v in label[1:]],
                               [(x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0], atol=1e-4)
    assert len(list((out / "labels" / "train").rglob("*.txt"))) == 6


def test_rerun_is_idempotent_and_resumes(fake, tmp_path):
    out = tmp_path / "out"
    imagenet.prepare(fake, out)
    before = tree(out)
    again = imagenet.prepare(fake, out)
    assert (again.train.written, again.val.written) == (0, 0) and tree(out) == before
    # an interrupted run: a half-unpacked synset and a lost validation image
    shutil.rmtree(out / "train" / SYNSETS[1])
    (out / "train" / f".{SYNSETS[1]}.partial").mkdir()
    (out / "train" / f".{SYNSETS[1]}.partial" / "junk.JPEG").write_bytes(b"x")
    lost = Path(data.read_list(out / "valid.list")[4])
    lost.unlink()
    resumed = imagenet.prepare(fake, out)
    assert (resumed.train.written, resumed.val.written) == (TRAIN, 1)
    assert tree(out) == before


def test_missing_files_are_reported(fake, tmp_path):
    out = tmp_path / "out"
    imagenet.prepare(fake, out)
    shutil.rmtree(out / "train" / SYNSETS[2])
    lost = Path(data.read_list(out / "valid.list")[0])
    lost.unlink()
    report = imagenet.prepare(None, out, devkit=fake / imagenet.DEVKIT_DIR)
    assert not report.complete
    assert report.train.missing_synsets == (SYNSETS[2],) and report.train.missing == TRAIN
    assert report.val.missing == 1 and report.val.missing_examples == (lost.name,)
    assert len(data.read_list(out / "valid.list")) == 8
    assert f"1 synsets without images: {SYNSETS[2]}" in str(report)
    with pytest.raises(imagenet.IncompleteError, match="INCOMPLETE") as info:
        imagenet.prepare(None, out, devkit=fake / imagenet.DEVKIT_DIR, strict=True)
    assert info.value.report.val.missing == 1


def test_extracted_sources(fake, prepared, tmp_path):
    """A folder of <wnid>.tar, a flat val folder, a devkit .tar.gz and XML folders."""
    train, val, bbox = tmp_path / "train", tmp_path / "val", tmp_path / "bbox"
    for archive, folder in ((imagenet.TRAIN_TAR, train), (imagenet.VAL_TAR, val),
                            (imagenet.BBOX_TRAIN_TGZ, bbox)):
        with tarfile.open(fake / archive) as tar:
            tar.extractall(folder, **SAFE)
    devkit = tmp_path / "devkit.tar.gz"
    with tarfile.open(devkit, "w:gz") as tar:
        tar.add(fake / imagenet.DEVKIT_DIR, arcname=imagenet.DEVKIT_DIR)
    out = tmp_path / "out"
    report = imagenet.prepare(None, out, train=train, val=val, devkit=devkit, bbox_train=bbox)
    assert report.complete and (report.train_boxes, report.val_boxes) == (6, None)
    assert len(list(val.iterdir())) == 9                      # the flat source is left intact
    reference, _ = prepared
    for name in ("train.list", "valid.list"):
        assert [Path(p).relative_to(out) for p in data.read_list(out / name)] == \
               [Path(p).relative_to(reference) for p in data.read_list(reference / name)]
    assert (out / imagenet.TRAIN_CSV).read_text() == (reference / imagenet.TRAIN_CSV).read_text()


def test_sorted_folders_are_used_in_place(fake, prepared, tmp_path):
    reference, _ = prepared
    report = imagenet.prepare(None, tmp_path / "out", train=reference / "train",
                              val=reference / "val", devkit=fake / imagenet.DEVKIT_DIR)
    assert report.complete and report.train.root == reference / "train"
    assert not (tmp_path / "out" / "train").exists()
    valid = data.read_list(tmp_path / "out" / "valid.list")
    assert valid == data.read_list(reference / "valid.list")


def test_labels_list_replaces_meta(fake, prepared, tmp_path):
    devkit = tmp_path / "devkit"
    (devkit / "data").mkdir(parents=True)
    shutil.copy(fake / imagenet.DEVKIT_DIR / imagenet.GROUND_TRUTH, devkit / imagenet.GROUND_TRUTH)
    labels = tmp_path / "labels.list"
    labels.write_text("".join(f"{w}\n" for w in SYNSETS))
    with pytest.raises(CfgError, match="meta.mat or a labels list"):
        imagenet.prepare(fake, tmp_path / "out", devkit=devkit)
    report = imagenet.prepare(fake, tmp_path / "out", devkit=devkit, labels_list=labels)
    reference, _ = prepared
    assert report.complete and report.train.expected is None
    assert (tmp_path / "out" / "labels.list").read_text() == labels.read_text()
    assert [Path(p).parent.name for p in data.read_list(tmp_path / "out" / "valid.list")] == \
           [Path(p).parent.name for p in data.read_list(reference / "valid.list")]


def test_labels_list_must_agree_with_meta(fake, tmp_path):
    labels = tmp_path / "labels.list"
    labels.write_text("".join(f"{w}\n" for w in reversed(SYNSETS)))
    with pytest.raises(CfgError, match="disagrees with meta.mat at ILSVRC2012_ID 1"):
        imagenet.read_synsets(fake / imagenet.DEVKIT_DIR, labels)


def test_output_folder_named_like_a_synset_fails_verification(fake, tmp_path):
    with pytest.raises(data.LabelError, match=f"directory name '{SYNSETS[0]}_copy'"):
        imagenet.prepare(fake, tmp_path / f"{SYNSETS[0]}_copy")


def test_missing_sources(fake, tmp_path):
    with pytest.raises(FileNotFoundError):
        imagenet.prepare(tmp_path / "nowhere", tmp_path / "out")
    with pytest.raises(FileNotFoundError):
        imagenet.prepare(fake, tmp_path / "out", val=tmp_path / "no.tar")


def test_parse_bbox_xml_follows_the_tensorflow_rule():
    def obj(name, *box):
        coords = "".join(f"<{k}>{v}</{k}>" for k, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
        return f"<object><name>{name}</name><bndbox>{coords}</bndbox></object>"

    xml = ("<annotation><size><width>200</width><height>100</height></size>"
           + obj("n1", 150.7, 80, 50, 20)       # truncated to 150, then swapped
           + obj("n2", 0, 0, 9, 9)              # another listed synset: dropped
           + obj("person", -10, 0, 250, 50)     # not a synset: kept, clamped
           + obj("n1", 10, 10, 10, 50)          # empty: dropped
           + "</annotation>").encode()
    assert imagenet.parse_bbox_xml(xml, "n1", {"n1", "n2"}) == [(0.25, 0.2, 0.75, 0.8),
                                                                (0.0, 0.0, 1.0, 0.5)]
    with pytest.raises(ValueError, match="size"):
        imagenet.parse_bbox_xml(b"<annotation/>", "n1", {"n1"})


def test_cli(fake, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    imagenet.add_cli_arguments(parser)
    args = parser.parse_args([str(fake), str(tmp_path / "out"), "--strict", "--no-verify"])
    assert imagenet.run_cli(args) == 0
    assert "3 classes, complete" in capsys.readouterr().out


@pytest.mark.skipif(not (SHARED / "darknet/cfg/imagenet.labels.list").is_file(),
                    reason="shared/darknet is not available")
def test_darknet_labels_list_order(fake, tmp_path):
    labels = SHARED / "darknet/cfg/imagenet.labels.list"
    synsets = imagenet.read_synsets(labels_list=labels,
                                    names_list=SHARED / "darknet/cfg/imagenet.shortnames.list")
    assert len(synsets) == 1000 and synsets[0].name == "kit fox"
    # devkit ground-truth ids 490, 361, 171 (spec §6.2, §9.1)
    assert [synsets[g - 1].wnid for g in (490, 361, 171)] == ["n01751748", "n09193705", "n02105855"]
    # the fake synsets are darknet's first three lines, so the devkit agrees with the list
    assert [s.wnid for s in imagenet.read_synsets(fake / imagenet.DEVKIT_DIR, labels)] == SYNSETS
    devkit = tmp_path / "devkit"
    (devkit / "data").mkdir(parents=True)
    shutil.copy(fake / imagenet.DEVKIT_DIR / imagenet.GROUND_TRUTH, devkit / imagenet.GROUND_TRUTH)
    report = imagenet.prepare(fake, tmp_path / "out", devkit=devkit, labels_list=labels)
    assert report.classes == 1000 and not report.complete
    assert report.train.expected == imagenet.TRAIN_IMAGES and report.train.found == 12
    assert len(report.train.missing_synsets) == 997 and report.val.missing == 0
    assert data.read_data_cfg(report.data_file).classes == 1000
