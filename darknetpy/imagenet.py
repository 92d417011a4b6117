"""ILSVRC-2012 (ImageNet-1k) in the layout darknet expects (spec §9).

:func:`prepare` turns the official downloads, folders already extracted from
them, or Kaggle's copy (the "ImageNet Object Localization Challenge" layout) into::

    OUT/train/<wnid>/<wnid>_<n>.JPEG                  one folder per synset
    OUT/val/<wnid>/ILSVRC2012_val_<8 digits>.JPEG     sorted with the ground truth (devkit or Kaggle CSV)
    OUT/labels/{train,val}/<wnid>/<image stem>.txt     YOLO boxes "<class> <xc> <yc> <w> <h>"
    OUT/imagenet_2012_bounding_boxes.csv               train boxes, TensorFlow inception format
    OUT/imagenet_2012_validation_bounding_boxes.csv    validation boxes, same format
    OUT/train.list, OUT/valid.list                     absolute image paths
    OUT/labels.list, OUT/names.list                    WNIDs / names in ILSVRC2012_ID order
    OUT/imagenet1k.data                                the darknet .data file
    OUT/backup/                                        darknet's weights backup directory

Class index k is ILSVRC2012_ID - 1 everywhere (line k+1 of ``labels.list``), so
the lists work with darknet's ``imagenet.labels.list`` and pretrained weights.
Every image path contains its own WNID and no other one (spec §9.3).  The
YOLO label files live in a mirror tree under ``OUT/labels`` so that the image
folders hold images only and folders used in place are never written to.
"""
from __future__ import annotations

import argparse
import collections
import contextlib
import errno
import io
import logging
import os
import re
import shutil
import sys
import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path, PurePosixPath
from typing import IO, Any

import cv2
import numpy as np
from tqdm import tqdm

from .data import PathArg, check_labelled, read_lines
from .errors import CfgError, IncompleteError, NoImagesError
from .paths import write_atomic

__all__ = [
    "IncompleteError",
    "NoImagesError",
    "PrepareReport",
    "SplitReport",
    "Synset",
    "TRAIN_IMAGES",
    "VAL_IMAGES",
    "add_cli_arguments",
    "make_fake_ilsvrc",
    "parse_bbox_xml",
    "prepare",
    "read_synsets",
    "run_cli",
]

log = logging.getLogger("darknetpy")

TRAIN_IMAGES = 1_281_167
VAL_IMAGES = 50_000
CLASSES = 1000

TRAIN_TAR = "ILSVRC2012_img_train.tar"
VAL_TAR = "ILSVRC2012_img_val.tar"
DEVKIT_DIR = "ILSVRC2012_devkit_t12"
BBOX_TRAIN_TGZ = "ILSVRC2012_bbox_train_v2.tar.gz"
BBOX_VAL_TGZ = "ILSVRC2012_bbox_val_v3.tgz"
GROUND_TRUTH = "data/ILSVRC2012_validation_ground_truth.txt"
META = "data/meta.mat"
TRAIN_CSV = "imagenet_2012_bounding_boxes.csv"
VAL_CSV = "imagenet_2012_validation_bounding_boxes.csv"
DATA_FILE = "imagenet1k.data"
KAGGLE_SYNSETS = "LOC_synset_mapping.txt"
KAGGLE_VAL_SOLUTION = "LOC_val_solution.csv"

# Official names in a download folder: (archive, extracted folder).
_OFFICIAL = {
    "train": (TRAIN_TAR, "ILSVRC2012_img_train"),
    "val": (VAL_TAR, "ILSVRC2012_img_val"),
    "devkit": (f"{DEVKIT_DIR}.tar.gz", DEVKIT_DIR),
    "bbox_train": (BBOX_TRAIN_TGZ, "ILSVRC2012_bbox_train_v2"),
    "bbox_val": (BBOX_VAL_TGZ, "ILSVRC2012_bbox_val_v3"),
}
# Kaggle's layout: the same images and XML as the official archives, unpacked to these folders.
_KAGGLE = {
    "train": "ILSVRC/Data/CLS-LOC/train",
    "val": "ILSVRC/Data/CLS-LOC/val",
    "bbox_train": "ILSVRC/Annotations/CLS-LOC/train",
    "bbox_val": "ILSVRC/Annotations/CLS-LOC/val",
}
_WNID = re.compile(r"n\d{8}")
_IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png")
_EXAMPLES = 10


def _val_name(number: int) -> str:
    """File stem of validation image *number* (1-based)."""
    return f"ILSVRC2012_val_{number:08d}"


# --------------------------------------------------------------------------- synsets


@dataclass(frozen=True)
class Synset:
    """One ILSVRC-2012 class; darknet's class index is ``ilsvrc_id - 1``.

    ``train_images`` is the devkit's training-image count (None without meta.mat).
    """

    ilsvrc_id: int
    wnid: str
    name: str
    train_images: int | None = None


def _read_member(source: Path, relative: str) -> bytes | None:
    """Bytes of *relative* inside a folder or an archive (any top folder), or None."""
    if source.is_dir():
        path = source / relative
        return path.read_bytes() if path.is_file() else None
    with tarfile.open(source) as tar:
        for member in tar:
            if member.isfile() and f"/{member.name}".endswith(f"/{relative}"):
                return tar.extractfile(member).read()
    return None


def _meta_synsets(meta: bytes) -> list[Synset]:
    """The leaf synsets of a devkit meta.mat, in ILSVRC2012_ID order."""
    from scipy.io import loadmat  # heavy import, only needed here

    def scalar(value: Any) -> Any:
        return np.asarray(value).squeeze()[()]

    rows = loadmat(io.BytesIO(meta), squeeze_me=True)["synsets"].ravel()
    leaves = sorted(
        (Synset(int(scalar(r["ILSVRC2012_ID"])), str(scalar(r["WNID"])),
                str(scalar(r["words"])).split(",")[0].strip(), int(scalar(r["num_train_images"])))
         for r in rows if int(scalar(r["num_children"])) == 0),
        key=lambda s: s.ilsvrc_id)
    if [s.ilsvrc_id for s in leaves] != list(range(1, len(leaves) + 1)):
        raise CfgError("meta.mat: the leaf synsets' ILSVRC2012_IDs are not 1..N")
    return leaves


def _list_synsets(labels_list: PathArg) -> list[Synset]:
    """Synsets from the first 1000 lines of a WNID list in ILSVRC2012_ID order."""
    wnids = read_lines(labels_list)[:CLASSES]
    bad = next((w for w in wnids if not _WNID.fullmatch(w)), None)
    if bad is not None or not wnids:
        raise CfgError(f"{labels_list}: expected one WNID (n + 8 digits) per line, "
                       + (f"found {bad!r}" if wnids else "the file is empty"))
    return [Synset(i, w, w) for i, w in enumerate(wnids, 1)]


def _mapping_synsets(path: PathArg) -> list[Synset]:
    """Synsets of Kaggle's LOC_synset_mapping.txt (``<wnid> <words>`` lines), in file order."""
    synsets = []
    for number, line in enumerate(read_lines(path), 1):
        wnid, _, words = line.partition(" ")
        if not _WNID.fullmatch(wnid):
            raise CfgError(f"{path}:{number}: expected '<wnid> <names>', found {line!r}")
        synsets.append(Synset(number, wnid, words.split(",")[0].strip() or wnid))
    if not synsets:
        raise CfgError(f"{path} is empty")
    return synsets


def read_synsets(devkit: PathArg | None = None, labels_list: PathArg | None = None,
                 names_list: PathArg | None = None,
                 synset_mapping: PathArg | None = None) -> list[Synset]:
    """The ILSVRC-2012 classes in ILSVRC2012_ID order (= darknet class order).

    *devkit* is the devkit folder or ``.tar.gz``; its ``data/meta.mat`` gives
    WNIDs, names (the first synonym of ``words``) and training counts.  Without
    meta.mat the first 1000 lines of *labels_list* (e.g. darknet's
    ``imagenet.labels.list``) give the order; when both exist they must agree.
    Without either, Kaggle's *synset_mapping* (``LOC_synset_mapping.txt``)
    gives the order, which is sorted by WNID and so is not darknet's: pass
    darknet's labels list too to keep darknet's class indices (pretrained
    weights).  The mapping's names are used unless meta.mat gives them, and it
    must hold the same synsets as the order.  *names_list* (same order, e.g.
    ``imagenet.shortnames.list``) overrides the names.  Raises ``CfgError``
    when no source is available or they disagree.
    """
    meta = _read_member(Path(devkit), META) if devkit is not None else None
    mapping = _mapping_synsets(synset_mapping) if synset_mapping is not None else None
    if meta is None and labels_list is None and mapping is None:
        raise CfgError("the class order needs the devkit's data/meta.mat, Kaggle's "
                       f"{KAGGLE_SYNSETS} or a labels list whose first 1000 lines are WNIDs in "
                       "ILSVRC2012_ID order (imagenet.labels.list)")
    synsets = (_meta_synsets(meta) if meta is not None
               else _list_synsets(labels_list) if labels_list is not None else mapping)
    if meta is not None and labels_list is not None:
        listed = [s.wnid for s in _list_synsets(labels_list)]
        for s in synsets:
            if s.ilsvrc_id > len(listed) or listed[s.ilsvrc_id - 1] != s.wnid:
                raise CfgError(f"{labels_list} disagrees with meta.mat at ILSVRC2012_ID "
                               f"{s.ilsvrc_id} ({s.wnid})")
    if mapping is not None and synsets is not mapping:
        names = {s.wnid: s.name for s in mapping}
        if set(names) != {s.wnid for s in synsets}:
            other = sorted(set(names) ^ {s.wnid for s in synsets})[0]
            raise CfgError(f"{synset_mapping} and the {'meta.mat' if meta else labels_list} "
                           f"class order list different synsets (e.g. {other})")
        if meta is None:
            synsets = [Synset(s.ilsvrc_id, s.wnid, names[s.wnid]) for s in synsets]
    if names_list is not None:
        names = read_lines(names_list)
        if len(names) < len(synsets):
            raise CfgError(f"{names_list} has {len(names)} lines, {len(synsets)} needed")
        synsets = [Synset(s.ilsvrc_id, s.wnid, n, s.train_images) for s, n in zip(synsets, names)]
    return synsets


def _ground_truth(devkit: Path | None, classes: int) -> list[int] | None:
    """ILSVRC2012_ID of each validation image (line i = image i), or None."""
    raw = _read_member(devkit, GROUND_TRUTH) if devkit is not None else None
    if raw is None:
        return None
    ids = [int(line) for line in raw.decode().split()]
    bad = next((g for g in ids if not 1 <= g <= classes), None)
    if bad is not None:
        raise CfgError(f"{GROUND_TRUTH}: ILSVRC2012_ID {bad} outside 1..{classes}")
    if classes == CLASSES and len(ids) != VAL_IMAGES:
        log.warning("%s has %d lines, the official file %d", GROUND_TRUTH, len(ids), VAL_IMAGES)
    return ids


def _solution_truth(path: Path, wnids: Sequence[str]) -> list[int]:
    """Like :func:`_ground_truth`, from Kaggle's LOC_val_solution.csv.

    Its rows (any order, after the header) are ``ILSVRC2012_val_<n>,<wnid> <box>
    ...``; the first WNID is the image's class.  The result is 1-based in *wnids*.
    """
    index = {w: i for i, w in enumerate(wnids, 1)}
    classes = {}
    for line in read_lines(path):
        stem, _, boxes = line.partition(",")
        if stem in ("ImageId", ""):
            continue
        match = re.fullmatch(r"ILSVRC2012_val_(\d{8})", stem)
        wnid = boxes.split(" ", 1)[0]
        if match is None or wnid not in index:
            raise CfgError(f"{path}: expected 'ILSVRC2012_val_<8 digits>,<wnid> <box> ...' with a "
                           f"WNID of the class list, found {line!r}")
        classes[int(match.group(1))] = index[wnid]
    absent = next((n for n in range(1, len(classes) + 1) if n not in classes), None)
    if absent is not None:
        raise CfgError(f"{path}: no row for {_val_name(absent)}; the rows must cover the "
                       f"validation images 1..{len(classes)}")
    if len(wnids) == CLASSES and len(classes) != VAL_IMAGES:
        log.warning("%s has %d rows, the official file %d", path, len(classes), VAL_IMAGES)
    return [classes[n] for n in range(1, len(classes) + 1)]


# --------------------------------------------------------------------------- boxes


def parse_bbox_xml(data: bytes, wnid: str, synsets: frozenset[str] | set[str]
                   ) -> list[tuple[float, float, float, float]]:
    """Boxes of one ILSVRC bbox XML as relative ``(xmin, ymin, xmax, ymax)``.

    The TensorFlow inception rule (spec §9.2): pixel coordinates are read as
    float and truncated to int, divided by the XML's width/height, swapped if
    reversed and clamped to [0, 1]; boxes whose ``<name>`` is another synset of
    *synsets* are dropped (other names are kept), as are empty boxes.  Raises
    ``ValueError`` (or ``ET.ParseError``) for a malformed file.
    """
    root = ET.fromstring(data)
    width, height = (float(root.findtext(f"size/{k}", "0")) for k in ("width", "height"))
    if width <= 0 or height <= 0:
        raise ValueError("missing or zero <size>")
    boxes = []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name != wnid and name in synsets:
            continue
        x0, y0, x1, y1 = (int(float(obj.findtext(f"bndbox/{k}", "nan")))
                          for k in ("xmin", "ymin", "xmax", "ymax"))
        xs = sorted(min(max(v / width, 0.0), 1.0) for v in (x0, x1))
        ys = sorted(min(max(v / height, 0.0), 1.0) for v in (y0, y1))
        if xs[0] < xs[1] and ys[0] < ys[1]:
            boxes.append((xs[0], ys[0], xs[1], ys[1]))
    return boxes


def _iter_xml(source: Path) -> Iterator[tuple[PurePosixPath, bytes]]:
    """(relative path, bytes) of every XML in a folder or archive, streamed."""
    if source.is_dir():
        for path in sorted(source.rglob("*.xml")):
            yield PurePosixPath(path.relative_to(source).as_posix()), path.read_bytes()
        return
    with tarfile.open(source, mode="r|*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xml"):
                yield PurePosixPath(member.name), tar.extractfile(member).read()


def _convert_boxes(source: Path | None, csv_path: Path, labels_dir: Path,
                   image_wnid: Callable[[PurePosixPath, bytes], str | None],
                   index: dict[str, int], progress: bool | None) -> int | None:
    """Write the YOLO files, then the CSV; returns its rows (None: nothing to do).

    The CSV is written last and doubles as the done marker: when it exists the
    conversion is skipped and its rows are counted.
    """
    if csv_path.exists():
        return len(read_lines(csv_path))
    if source is None:
        return None
    rows = []
    known = frozenset(index)
    for path, data in tqdm(_iter_xml(source), desc=f"{labels_dir.name} boxes", unit="xml",
                           disable=_tqdm_disable(progress), file=sys.stderr):
        try:
            wnid = image_wnid(path, data)
            if wnid is None:
                continue
            boxes = parse_bbox_xml(data, wnid, known)
        except (ValueError, ET.ParseError) as exc:
            log.warning("%s: skipped bad XML %s: %s", source, path, exc)
            continue
        stem = path.stem
        rows += [f"{stem}.JPEG,{x0:.4f},{y0:.4f},{x1:.4f},{y1:.4f}" for x0, y0, x1, y1 in boxes]
        target = labels_dir / wnid / f"{stem}.txt"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(
            f"{index[wnid]} {(x0 + x1) / 2:.6f} {(y0 + y1) / 2:.6f} {x1 - x0:.6f} {y1 - y0:.6f}\n"
            for x0, y0, x1, y1 in boxes))
    _write_text(csv_path, "".join(f"{row}\n" for row in sorted(rows)))
    return len(rows)


def _train_xml_wnid(known: set[str], path: PurePosixPath, _: bytes) -> str | None:
    """Train XML label = its parent folder (TF rule); other folders are skipped."""
    return path.parent.name if path.parent.name in known else None


def _val_xml_wnid(truth: list[int] | None, wnids: Sequence[str], path: PurePosixPath,
                  data: bytes) -> str | None:
    """Validation XML label: the ground truth, else the first ``<name>``."""
    match = re.fullmatch(r"ILSVRC2012_val_(\d{8})", path.stem)
    if truth is not None:
        number = int(match.group(1)) if match else 0
        return wnids[truth[number - 1] - 1] if 1 <= number <= len(truth) else None
    name = (ET.fromstring(data).findtext("object/name") or "").strip()
    return name if name in wnids else None


# --------------------------------------------------------------------------- files and images


def _tqdm_disable(progress: bool | None) -> bool | None:
    """tqdm's ``disable``: None = automatic (only on a TTY)."""
    return None if progress is None else not progress


def _write_text(path: Path, text: str) -> None:
    """Write *text* atomically (temporary file, then rename)."""
    write_atomic(path, text.encode("utf-8"))


def _write_stream(path: Path, source: IO[bytes]) -> None:
    """Copy a binary stream to *path* atomically."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        shutil.copyfileobj(source, f)
    os.replace(tmp, path)


def _link_or_copy(source: Path, target: Path) -> None:
    """Hard-link *source* to *target* (copy across file systems), atomically."""
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _has_synset_folders(folder: Path, wnids: Sequence[str]) -> bool:
    return any((folder / w).is_dir() for w in wnids)


@contextlib.contextmanager
def _synset_tars(source: Path) -> Iterator[list[tuple[str, Callable[[], IO[bytes]]]]]:
    """(wnid, opener) of each per-synset tar, in the train tar or a folder of them."""
    if source.is_dir():
        yield [(path.stem, partial(open, path, "rb")) for path in sorted(source.glob("n*.tar"))]
        return
    with tarfile.open(source) as outer:
        yield [(PurePosixPath(m.name).stem, partial(outer.extractfile, m))
               for m in outer.getmembers() if m.isfile() and m.name.endswith(".tar")]


def _extract_synset(opener: Callable[[], IO[bytes]], final: Path) -> int:
    """Unpack one synset tar into *final* via a partial folder; returns images."""
    work = final.with_name(f".{final.name}.partial")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    count = 0
    with opener() as f, tarfile.open(fileobj=f, mode="r|*") as inner:
        for member in inner:
            name = PurePosixPath(member.name).name  # flattened: no path traversal
            if member.isfile() and name not in ("", ".", ".."):
                with open(work / name, "wb") as out:
                    shutil.copyfileobj(inner.extractfile(member), out)
                count += 1
    os.rename(work, final)
    return count


def _prepare_train(source: Path | None, dest: Path, wnids: Sequence[str],
                   progress: bool | None) -> tuple[Path, int]:
    """Unpack the train images; returns (tree root, images written this run).

    A folder of ``<wnid>/`` folders is used in place; a folder of ``<wnid>.tar``
    or the official tar is unpacked into *dest*, skipping finished synsets.
    """
    if source is None:
        return dest, 0
    if source.is_dir() and not any(source.glob("n*.tar")) and _has_synset_folders(source, wnids):
        log.info("using extracted train images in place: %s", source)
        return source, 0
    known, written = set(wnids), 0
    dest.mkdir(parents=True, exist_ok=True)
    with _synset_tars(source) as tars:
        if not tars:
            log.warning("%s holds no <wnid>.tar and no <wnid>/ folder", source)
        for wnid, opener in tqdm(tars, desc="train", unit="synset",
                                 disable=_tqdm_disable(progress), file=sys.stderr):
            if wnid not in known:
                log.warning("%s: skipped %s.tar, not an ILSVRC-2012 synset", source, wnid)
            elif not (dest / wnid).is_dir():
                written += _extract_synset(opener, dest / wnid)
    return dest, written


def _prepare_val(source: Path | None, dest: Path, wnids: Sequence[str],
                 truth: list[int] | None, progress: bool | None) -> tuple[Path, int]:
    """Sort the flat validation images into *dest*/<wnid>/; returns (root, written).

    A folder already sorted into ``<wnid>/`` folders is used in place.  Images
    come from the official tar or are hard-linked (else copied) from a flat
    folder, so the source is never modified.  Finished images are skipped.
    """
    if source is None:
        return dest, 0
    if source.is_dir() and not any(source.glob("ILSVRC2012_val_*")) \
            and _has_synset_folders(source, wnids):
        log.info("using sorted validation images in place: %s", source)
        return source, 0
    if truth is None:
        raise CfgError("sorting the validation images needs the devkit ground truth "
                       f"({GROUND_TRUTH}; pass devkit=) or Kaggle's {KAGGLE_VAL_SOLUTION}")
    targets = {f"{_val_name(i)}.JPEG": dest / wnids[g - 1] / f"{_val_name(i)}.JPEG"
               for i, g in enumerate(truth, 1)}
    for folder in {t.parent for t in targets.values()}:
        folder.mkdir(parents=True, exist_ok=True)
    bar = partial(tqdm, desc="val", unit="img", disable=_tqdm_disable(progress), file=sys.stderr)
    written = 0
    if source.is_dir():
        for name, target in bar(targets.items()):
            if not target.exists() and (source / name).is_file():
                _link_or_copy(source / name, target)
                written += 1
        return dest, written
    with tarfile.open(source) as tar:
        for member in bar(tar, total=len(targets)):
            target = targets.get(PurePosixPath(member.name).name)
            if member.isfile() and target is not None and not target.exists():
                _write_stream(target, tar.extractfile(member))
                written += 1
    return dest, written


def _scan(root: Path, wnids: Sequence[str]) -> dict[str, list[str]]:
    """Sorted image file names per synset folder of *root* (empty if absent)."""
    found = {}
    for wnid in wnids:
        folder = root / wnid
        found[wnid] = sorted(
            e.name for e in os.scandir(folder) if e.is_file() and not e.name.startswith(".")
            and e.name.lower().endswith(_IMAGE_SUFFIXES)) if folder.is_dir() else []
    return found


# --------------------------------------------------------------------------- report


@dataclass(frozen=True)
class SplitReport:
    """What one split (``train`` or ``val``) holds after :func:`prepare`.

    ``expected`` is None when unknown (no meta.mat for train and not 1000
    classes; no ground truth for val).  ``missing`` counts expected images not
    found; ``missing_synsets`` have no image at all; ``short_synsets`` are
    ``(wnid, found, expected)`` for the others with too few; ``missing_examples``
    names up to ten missing files where names are known (val).  ``written``
    counts images unpacked by this run (0 on a finished re-run).
    """

    name: str
    root: Path
    found: int
    expected: int | None
    missing: int
    written: int
    missing_synsets: tuple[str, ...]
    short_synsets: tuple[tuple[str, int, int], ...]
    missing_examples: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when no expected image and no synset is missing."""
        return self.missing == 0 and not self.missing_synsets

    def __str__(self) -> str:
        expected = "?" if self.expected is None else self.expected
        lines = [f"{self.name}: {self.found} of {expected} images in {self.root} "
                 f"({self.written} written now)"]
        if self.missing:
            lines.append(f"  {self.missing} images missing")
        if self.missing_synsets:
            shown = ", ".join(self.missing_synsets[:_EXAMPLES])
            more = len(self.missing_synsets) - _EXAMPLES
            lines.append(f"  {len(self.missing_synsets)} synsets without images: {shown}"
                         + (f" and {more} more" if more > 0 else ""))
        lines += [f"  {w}: {f} of {e} images" for w, f, e in self.short_synsets[:_EXAMPLES]]
        if self.missing_examples:
            lines.append(f"  e.g. missing {', '.join(self.missing_examples)}")
        return "\n".join(lines)


def _split_report(name: str, root: Path, found: dict[str, list[str]], written: int,
                  per_synset: dict[str, int] | None, total: int | None,
                  missing_examples: Sequence[str] = ()) -> SplitReport:
    counts = {w: len(names) for w, names in found.items()}
    short = tuple((w, counts[w], e) for w, e in (per_synset or {}).items() if 0 < counts[w] < e)
    if per_synset is not None:
        missing = sum(max(e - counts[w], 0) for w, e in per_synset.items())
    else:
        missing = max((total or 0) - sum(counts.values()), 0)
    empty = tuple(w for w, c in counts.items()
                  if c == 0 and (per_synset is None or per_synset.get(w, 0) > 0))
    return SplitReport(name, root, sum(counts.values()), total, missing, written, empty, short,
                       tuple(missing_examples[:_EXAMPLES]))


def _train_report(root: Path, synsets: Sequence[Synset], written: int
                  ) -> tuple[SplitReport, list[str]]:
    """Count the train tree against meta.mat (or the official total); list it by class."""
    wnids = [s.wnid for s in synsets]
    found = _scan(root, wnids)
    per_synset = ({s.wnid: s.train_images for s in synsets}
                  if all(s.train_images is not None for s in synsets) else None)
    total = (sum(per_synset.values()) if per_synset is not None
             else TRAIN_IMAGES if len(synsets) == CLASSES else None)
    paths = [str(root / w / n) for w in wnids for n in found[w]]
    return _split_report("train", root, found, written, per_synset, total), paths


def _val_report(root: Path, wnids: Sequence[str], truth: list[int] | None, written: int
                ) -> tuple[SplitReport, list[str]]:
    """Count the val tree against the ground truth; list it in ground-truth order."""
    found = _scan(root, wnids)
    if truth is None:
        paths = [str(root / w / n) for w in wnids for n in found[w]]
        return _split_report("val", root, found, written, None, None), paths
    present = {w: set(names) for w, names in found.items()}
    expected = [(wnids[g - 1], f"{_val_name(i)}.JPEG") for i, g in enumerate(truth, 1)]
    paths = [str(root / w / n) for w, n in expected if n in present[w]]
    absent = [n for w, n in expected if n not in present[w]]
    per_synset = dict(collections.Counter(w for w, _ in expected))
    return _split_report("val", root, found, written, per_synset, len(truth), absent), paths


@dataclass(frozen=True)
class PrepareReport:
    """The result of :func:`prepare`: where things are and what is missing.

    ``train_boxes``/``val_boxes`` count the rows of the box CSVs (None when no
    box source was given and no CSV exists).
    """

    out: Path
    data_file: Path
    classes: int
    train: SplitReport
    val: SplitReport
    train_boxes: int | None
    val_boxes: int | None

    @property
    def complete(self) -> bool:
        """True when both splits are complete."""
        return self.train.complete and self.val.complete

    def __str__(self) -> str:
        boxes = ", ".join(f"{n} {c}" for n, c in (("train", self.train_boxes),
                                                   ("val", self.val_boxes)) if c is not None)
        return "\n".join([f"ImageNet in {self.out}: {self.classes} classes, "
                          f"{'complete' if self.complete else 'INCOMPLETE'}",
                          str(self.train), str(self.val),
                          f"boxes: {boxes or 'none'}", f"data file: {self.data_file}"])


# --------------------------------------------------------------------------- prepare


def _candidates(role: str) -> tuple[str, ...]:
    """Names in a download folder that hold *role*: official archive, its folder, Kaggle's folder."""
    return _OFFICIAL[role] + ((_KAGGLE[role],) if role in _KAGGLE else ())


def _locate(root: Path | None, role: str, explicit: PathArg | None) -> Path | None:
    """The source for *role*: the explicit path, else the first candidate in *root*."""
    if explicit is not None:
        path = Path(explicit)
        if not path.exists():
            raise FileNotFoundError(errno.ENOENT, f"{role} source not found", str(path))
        return path
    if root is None:
        return None
    return next((root / n for n in _candidates(role) if (root / n).exists()), None)


def _kaggle_file(root: Path | None, name: str) -> Path | None:
    return root / name if root is not None and (root / name).is_file() else None


def _no_images(root: Path | None, sources: dict[str, Path | None]) -> NoImagesError:
    """The error for a preparation without images, saying where images were looked for."""
    looked = []
    for role in ("train", "val"):
        if sources[role] is not None:
            looked.append(f"{role}: {sources[role]} holds no image")
        elif root is not None:
            looked.append(f"{role}: none of {', '.join(_candidates(role))} in {root}")
        else:
            looked.append(f"{role}: no source given ({role}=)")
    return NoImagesError("no ImageNet image found: " + "; ".join(looked) + " (expected the official "
                         f"downloads, or Kaggle's layout with {KAGGLE_SYNSETS} and "
                         f"{KAGGLE_VAL_SOLUTION}; --train/--val name other places)")


def _write_outputs(out: Path, synsets: Sequence[Synset], train: list[str], val: list[str]) -> Path:
    """Write the lists, labels, names, backup folder and the .data file."""
    if re.search(r"\s", str(out)):
        log.warning("%s contains whitespace, which darknet deletes from .data values; "
                    "darknet itself will not find the lists", out)
    (out / "backup").mkdir(exist_ok=True)
    for name, lines in (("train.list", train), ("valid.list", val),
                        ("labels.list", [s.wnid for s in synsets]),
                        ("names.list", [s.name for s in synsets])):
        _write_text(out / name, "".join(f"{line}\n" for line in lines))
    data_file = out / DATA_FILE
    _write_text(data_file, f"classes={len(synsets)}\ntrain={out / 'train.list'}\n"
                           f"valid={out / 'valid.list'}\nlabels={out / 'labels.list'}\n"
                           f"names={out / 'names.list'}\nbackup={out / 'backup'}/\ntop=5\n")
    return data_file


def prepare(root: PathArg | None, out: PathArg, *, train: PathArg | None = None,
            val: PathArg | None = None, devkit: PathArg | None = None,
            bbox_train: PathArg | None = None, bbox_val: PathArg | None = None,
            labels_list: PathArg | None = None, names_list: PathArg | None = None,
            verify: bool = True, strict: bool = False,
            progress: bool | None = None) -> PrepareReport:
    """Prepare ILSVRC-2012 for darknet in *out* (layout in the module docstring).

    *root* is a folder holding the downloads under their official names
    (``ILSVRC2012_img_train.tar``, ``ILSVRC2012_img_val.tar``,
    ``ILSVRC2012_devkit_t12.tar.gz``, ``ILSVRC2012_bbox_train_v2.tar.gz``,
    ``ILSVRC2012_bbox_val_v3.tgz``, or folders extracted from them under the same
    names without the extension); missing ones are skipped.  Kaggle's layout is
    detected in *root* too: ``ILSVRC/Data/CLS-LOC/{train,val}`` (``test`` holds
    no labels and is not used) and ``ILSVRC/Annotations/CLS-LOC/{train,val}``
    (the XML boxes) are the same images and boxes as the official archives;
    ``LOC_synset_mapping.txt`` gives the classes (see :func:`read_synsets` for
    its order) and ``LOC_val_solution.csv`` the validation labels, where no
    devkit does.  (``LOC_train_solution.csv`` holds the XML's boxes without the
    image sizes that relative boxes need, so it is not read.)  The keyword
    paths override single pieces, each an archive or a folder:

    * *train*: the train tar, a folder of ``<wnid>.tar`` (unpacked into
      ``out/train``) or of ``<wnid>/`` image folders (used in place);
    * *val*: the validation tar or its flat folder (images hard-linked, else
      copied, into ``out/val/<wnid>/``), or a folder already sorted into
      ``<wnid>/`` folders (used in place);
    * *devkit*: the devkit ``.tar.gz`` or folder (ground truth and meta.mat);
    * *bbox_train* / *bbox_val*: the box archives or folders of XML;
    * *labels_list* / *names_list*: see :func:`read_synsets` (class order
      without meta.mat; darknet's names).

    ``classes`` in the ``.data`` file is the number of devkit synsets (1000 for
    the real devkit even when only part of the images is present, so indices
    stay ILSVRC2012_ID - 1; fewer for a test tree).  Re-running is cheap and
    idempotent: finished synsets, images and box CSVs are skipped and the
    lists are rewritten.  The ``.data`` file holds absolute paths.  *verify*
    checks every listed path against darknet's label rule before the lists
    are written (:func:`darknetpy.data.check_labelled`; raises ``LabelError``,
    e.g. when *out* itself contains a WNID).
    Missing images are reported in the result; with *strict* they raise
    :class:`IncompleteError`.  When no image is found at all, no list and no
    ``.data`` file are written and :class:`NoImagesError` lists where images
    were looked for.  *progress*:
    tqdm bars on stderr, None = on a TTY.
    """
    root_path = None if root is None else Path(root)
    if root_path is not None and not root_path.is_dir():
        raise FileNotFoundError(errno.ENOENT, "ImageNet download folder not found", str(root_path))
    sources = {role: _locate(root_path, role, path) for role, path in (
        ("train", train), ("val", val), ("devkit", devkit),
        ("bbox_train", bbox_train), ("bbox_val", bbox_val))}
    out = Path(out).resolve()
    if sources["train"] is None and sources["val"] is None \
            and not (out / "train").is_dir() and not (out / "val").is_dir():
        raise _no_images(root_path, sources)
    synsets = read_synsets(sources["devkit"], labels_list, names_list,
                           _kaggle_file(root_path, KAGGLE_SYNSETS))
    wnids = [s.wnid for s in synsets]
    truth = _ground_truth(sources["devkit"], len(synsets))
    solution = _kaggle_file(root_path, KAGGLE_VAL_SOLUTION)
    if truth is None and solution is not None:
        truth = _solution_truth(solution, wnids)
    out.mkdir(parents=True, exist_ok=True)

    train_root, train_written = _prepare_train(sources["train"], out / "train", wnids, progress)
    val_root, val_written = _prepare_val(sources["val"], out / "val", wnids, truth, progress)
    train_root, val_root = train_root.resolve(), val_root.resolve()
    index = {w: i for i, w in enumerate(wnids)}
    train_boxes = _convert_boxes(sources["bbox_train"], out / TRAIN_CSV, out / "labels" / "train",
                                 partial(_train_xml_wnid, set(wnids)), index, progress)
    val_boxes = _convert_boxes(sources["bbox_val"], out / VAL_CSV, out / "labels" / "val",
                               partial(_val_xml_wnid, truth, wnids), index, progress)

    train_report, train_list = _train_report(train_root, synsets, train_written)
    val_report, val_list = _val_report(val_root, wnids, truth, val_written)
    if not train_list and not val_list:
        raise _no_images(root_path, sources)
    if verify:
        check_labelled(train_list + val_list, wnids)
    data_file = _write_outputs(out, synsets, train_list, val_list)
    report = PrepareReport(out, data_file, len(synsets), train_report, val_report,
                           train_boxes, val_boxes)
    if strict and not report.complete:
        raise IncompleteError(str(report), report)
    log.info("%s", report)
    return report


# --------------------------------------------------------------------------- fake tree


def _random_image(wnid: str, index: int, rng: np.random.Generator) -> np.ndarray:
    """A small random BGR image of random size."""
    h, w = rng.integers(16, 48, size=2)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _jpeg(image: np.ndarray) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image)
    if not ok:
        raise ValueError("cv2.imencode failed")
    return encoded.tobytes()


def _bbox_xml(stem: str, shape: tuple[int, ...], wnid: str, rng: np.random.Generator) -> bytes:
    """A PASCAL-VOC-style annotation with one random box, as in the ILSVRC archives."""
    h, w = shape[:2]
    root = ET.Element("annotation")
    ET.SubElement(root, "filename").text = stem
    size = ET.SubElement(root, "size")
    for key, value in (("width", w), ("height", h), ("depth", 3)):
        ET.SubElement(size, key).text = str(value)
    obj = ET.SubElement(root, "object")
    ET.SubElement(obj, "name").text = wnid
    box = ET.SubElement(obj, "bndbox")
    xs, ys = sorted(rng.choice(w, 2, replace=False)), sorted(rng.choice(h, 2, replace=False))
    for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (xs[0], ys[0], xs[1], ys[1])):
        ET.SubElement(box, key).text = str(value)
    return ET.tostring(root)


def _write_meta(path: Path, synsets: Sequence[str], train_per_class: int,
                rng: np.random.Generator) -> None:
    """meta.mat with the devkit's fields: the leaves in shuffled row order, then one parent."""
    from scipy.io import savemat  # heavy import, only needed here

    fields = ["ILSVRC2012_ID", "WNID", "words", "gloss", "num_children", "children",
              "wordnet_height", "num_train_images"]
    k = len(synsets)
    rows = [(float(i), w, f"class {i}, {w}", f"gloss of {w}", 0.0, np.zeros(0), 0.0,
             float(train_per_class)) for i, w in enumerate(synsets, 1)]
    rows = [rows[i] for i in rng.permutation(k)]
    rows.append((float(k + 1), "n00001740", "entity", "the root", float(k),
                 np.arange(1, k + 1, dtype=float), 1.0, float(k * train_per_class)))
    table = np.empty((len(rows), 1), dtype=[(f, object) for f in fields])
    for i, row in enumerate(rows):
        table[i, 0] = row
    savemat(path, {"synsets": table})


def make_fake_ilsvrc(dir: PathArg, synsets: Sequence[str], train_per_class: int,
                     val_per_class: int, *,
                     image_fn: Callable[[str, int, np.random.Generator], np.ndarray] | None = None,
                     seed: int = 0) -> Path:
    """Write a tiny ILSVRC-2012 download in the official layout; returns *dir*.

    *synsets* are WNIDs in ILSVRC2012_ID order (ID = position + 1).  Written:
    ``ILSVRC2012_img_train.tar`` (one ``<wnid>.tar`` per synset holding
    ``<wnid>_<n>.JPEG``), ``ILSVRC2012_img_val.tar`` (flat, labels shuffled),
    the folder ``ILSVRC2012_devkit_t12/data/`` with the ground truth and a
    ``meta.mat`` (devkit fields; names ``class <id>``; plus one parent synset),
    ``ILSVRC2012_bbox_train_v2.tar.gz`` (``<wnid>/<stem>.xml`` for every other
    train image) and ``ILSVRC2012_bbox_val_v3.tgz`` (``val/<stem>.xml``).
    ``image_fn(wnid, index, rng)`` returns a uint8 HxWx3 BGR image, *index*
    counting from 0 within the synset and split; default: small random noise.
    JPEGs are encoded with ``cv2.imencode`` straight into the archives.
    """
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    image_fn = image_fn or _random_image
    with tarfile.open(root / TRAIN_TAR, "w") as outer, \
            tarfile.open(root / BBOX_TRAIN_TGZ, "w:gz") as boxes:
        for wnid in synsets:
            buffer = io.BytesIO()
            with tarfile.open(fileobj=buffer, mode="w") as inner:
                for i in range(train_per_class):
                    image, stem = image_fn(wnid, i, rng), f"{wnid}_{i + 1}"
                    _add(inner, f"{stem}.JPEG", _jpeg(image))
                    if i % 2 == 0:
                        _add(boxes, f"{wnid}/{stem}.xml", _bbox_xml(stem, image.shape, wnid, rng))
            _add(outer, f"{wnid}.tar", buffer.getvalue())
    truth = rng.permutation(np.repeat(np.arange(1, len(synsets) + 1), val_per_class))
    seen: collections.Counter[str] = collections.Counter()
    with tarfile.open(root / VAL_TAR, "w") as flat, \
            tarfile.open(root / BBOX_VAL_TGZ, "w:gz") as boxes:
        for number, g in enumerate(truth, 1):
            wnid, stem = synsets[g - 1], _val_name(number)
            image = image_fn(wnid, seen[wnid], rng)
            seen[wnid] += 1
            _add(flat, f"{stem}.JPEG", _jpeg(image))
            _add(boxes, f"val/{stem}.xml", _bbox_xml(stem, image.shape, wnid, rng))
    data = root / DEVKIT_DIR / "data"
    data.mkdir(parents=True, exist_ok=True)
    (data / PurePosixPath(GROUND_TRUTH).name).write_text("".join(f"{g}\n" for g in truth))
    _write_meta(data / PurePosixPath(META).name, synsets, train_per_class, rng)
    return root


# --------------------------------------------------------------------------- CLI


def add_cli_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the arguments of ``darknetpy imagenet prepare`` to *parser*.

    Progress follows ``args.progress`` (True/False/None) when the global
    ``--progress/--no-progress`` flags set it; they are not added here.
    """
    parser.add_argument("source", help="folder with the official ILSVRC2012 downloads "
                                       "(archives or extracted folders) or Kaggle's copy "
                                       f"(ILSVRC/, {KAGGLE_SYNSETS}, ...)")
    parser.add_argument("out", help="output folder for the darknet tree, lists and .data file")
    for flag, what in (("--train", "train tar, or folder of <wnid>.tar or <wnid>/"),
                       ("--val", "validation tar, or flat or <wnid>/-sorted folder"),
                       ("--devkit", "devkit .tar.gz or folder"),
                       ("--bbox-train", "train box archive or XML folder"),
                       ("--bbox-val", "validation box archive or XML folder")):
        parser.add_argument(flag, metavar="PATH", help=f"{what} (overrides SOURCE)")
    parser.add_argument("--labels", metavar="PATH", help="WNIDs in ILSVRC2012_ID order, used "
                        "without meta.mat (e.g. darknet's imagenet.labels.list)")
    parser.add_argument("--names", metavar="PATH", help="class names in the same order "
                        "(e.g. darknet's imagenet.shortnames.list)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip checking every listed path against darknet's label rule")
    parser.add_argument("--strict", action="store_true",
                        help="fail (exit 1) when images are missing")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``darknetpy imagenet prepare``: print the report to stdout, return 0.

    ``DarknetError`` and ``OSError`` propagate for the CLI's error handler.
    """
    report = prepare(args.source, args.out, train=args.train, val=args.val, devkit=args.devkit,
                     bbox_train=args.bbox_train, bbox_val=args.bbox_val,
                     labels_list=args.labels, names_list=args.names, verify=args.verify,
                     strict=args.strict, progress=getattr(args, "progress", None))
    print(report)
    return 0
