"""darknetpy.imagenet: ILSVRC-2012 downloads to darknet lists (spec §9), on a generated tree."""
import argparse
import random
import shutil
import tarfile
import xml.etree.ElementTree as ET
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


def make_kaggle(fake: Path, root: Path) -> Path:
    """The fake download laid out as Kaggle's ImageNet Object Localization Challenge."""
    data, boxes = root / "ILSVRC/Data/CLS-LOC", root / "ILSVRC/Annotations/CLS-LOC"
    with tarfile.open(fake / imagenet.TRAIN_TAR) as outer:
        for member in outer:
            with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                inner.extractall(data / "train" / Path(member.name).stem, **SAFE)
    for archive, folder in ((imagenet.VAL_TAR, data / "val"), (imagenet.BBOX_TRAIN_TGZ, boxes / "train"),
                            (imagenet.BBOX_VAL_TGZ, boxes)):          # the val XML sit in val/
        with tarfile.open(fake / archive) as tar:
            tar.extractall(folder, **SAFE)
    (data / "test").mkdir()                                           # unlabelled: never listed
    shutil.copy(next((data / "val").iterdir()), data / "test" / "ILSVRC2012_test_00000001.JPEG")
    # WNID-sorted, not in ILSVRC2012_ID order, like the real file
    (root / imagenet.KAGGLE_SYNSETS).write_text("".join(f"{w} name of {w}, other name\n"
                                                        for w in sorted(SYNSETS)))
    for split, csv in (("train", "LOC_train_solution.csv"), ("val", imagenet.KAGGLE_VAL_SOLUTION)):
        rows = [f"{xml.stem},{solution_boxes(xml)}" for xml in (boxes / split).rglob("*.xml")]
        random.Random(0).shuffle(rows)
        (root / csv).write_text("ImageId,PredictionString\n" + "".join(f"{r}\n" for r in rows))
    return root


def solution_boxes(xml: Path) -> str:
    """An XML's objects as Kaggle's PredictionString: '<wnid> xmin ymin xmax ymax ...'."""
    return " ".join(" ".join([obj.findtext("name")] + [obj.findtext(f"bndbox/{k}") for k in
                                                       ("xmin", "ymin", "xmax", "ymax")])
                    for obj in ET.parse(xml).getroot().iter("object"))


@pytest.fixture(scope="module")
def kaggle(fake, tmp_path_factory) -> Path:
    return make_kaggle(fake, tmp_path_factory.mktemp("kaggle"))


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
    with pytest.raises(CfgError, match="meta.mat, Kaggle.s LOC_synset_mapping.txt or a labels list"):
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


def relative(out: Path, name: str) -> list:
    return [Path(p).relative_to(out) for p in data.read_list(out / name)]


def test_kaggle_layout_is_prepared_like_the_official_archives(kaggle, prepared, tmp_path):
    out = tmp_path / "out"
    report = imagenet.prepare(kaggle, out)
    assert report.complete and report.classes == 3
    assert report.train.root == kaggle / "ILSVRC/Data/CLS-LOC/train"          # used in place
    assert (report.train.found, report.train.written) == (12, 0)
    assert (report.val.found, report.val.written) == (9, 9)
    order = sorted(SYNSETS)                                                  # the mapping's order
    assert data.read_lines(out / "labels.list") == order
    assert data.read_lines(out / "names.list") == [f"name of {w}" for w in order]
    reference, _ = prepared
    # validation images sorted by LOC_val_solution.csv, listed in image-number order
    assert relative(out, "valid.list") == relative(reference, "valid.list")
    for path in data.read_list(out / "valid.list"):
        assert np.allclose(colour_of(Path(path)), COLOURS[Path(path).parent.name], atol=3)
    train = [Path(p).relative_to(report.train.root) for p in data.read_list(out / "train.list")]
    assert train == sorted(Path(p).relative_to(reference / "train")
                           for p in data.read_list(reference / "train.list"))
    for csv in (imagenet.TRAIN_CSV, imagenet.VAL_CSV):                       # boxes from the XML
        assert (out / csv).read_text() == (reference / csv).read_text()
    labels = sorted((out / "labels").rglob("*.txt"))
    assert len(labels) == 15
    for label in labels:                  # the same boxes; class indices in the mapping's order
        ours = label.read_text().split()
        theirs = (reference / label.relative_to(out)).read_text().split()
        assert ours[1:] == theirs[1:] and order[int(ours[0])] == SYNSETS[int(theirs[0])]


def test_kaggle_layout_with_darknet_class_order(kaggle, prepared, tmp_path):
    labels = tmp_path / "labels.list"
    labels.write_text("".join(f"{w}\n" for w in SYNSETS))
    out = tmp_path / "out"
    report = imagenet.prepare(kaggle, out, labels_list=labels)
    reference, _ = prepared
    assert report.complete and data.read_lines(out / "labels.list") == SYNSETS
    assert data.read_lines(out / "names.list") == [f"name of {w}" for w in SYNSETS]
    assert relative(out, "valid.list") == relative(reference, "valid.list")
    assert tree(out / "labels") == tree(reference / "labels")
    labels.write_text("".join(f"{w}\n" for w in SYNSETS[:2] + ["n01440764"]))
    with pytest.raises(CfgError, match="list different synsets"):
        imagenet.prepare(kaggle, tmp_path / "other", labels_list=labels)


def test_kaggle_val_solution_must_cover_every_image(kaggle, tmp_path):
    source = tmp_path / "kaggle"
    shutil.copytree(kaggle, source)
    solution = source / imagenet.KAGGLE_VAL_SOLUTION
    rows = [r for r in data.read_lines(solution) if not r.startswith("ILSVRC2012_val_00000004,")]
    solution.write_text("".join(f"{r}\n" for r in rows))
    with pytest.raises(CfgError, match="no row for ILSVRC2012_val_00000004"):
        imagenet.prepare(source, tmp_path / "out")


def test_source_without_images_is_an_error(kaggle, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(imagenet.NoImagesError) as info:
        imagenet.prepare(empty, tmp_path / "out")
    for looked_for in (imagenet.TRAIN_TAR, "ILSVRC2012_img_val", "ILSVRC/Data/CLS-LOC/train",
                       imagenet.KAGGLE_SYNSETS, imagenet.KAGGLE_VAL_SOLUTION):
        assert looked_for in str(info.value)
    assert isinstance(info.value, FileNotFoundError) and not (tmp_path / "out").exists()
    # Kaggle's files and folders, but no image in them
    source = tmp_path / "kaggle"
    shutil.copytree(kaggle, source, ignore=shutil.ignore_patterns("*.JPEG"))
    with pytest.raises(imagenet.NoImagesError, match="ILSVRC/Data/CLS-LOC/train holds no image"):
        imagenet.prepare(source, tmp_path / "out")
    assert not (tmp_path / "out" / imagenet.DATA_FILE).exists()


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
