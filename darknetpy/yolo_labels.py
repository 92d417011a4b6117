"""YOLO label files for detector training (spec D6.1, D6.2): where a training image's
label file is and its validated boxes."""
from __future__ import annotations

import logging
import math
import os
from typing import Union

import numpy as np

from .detector_eval import label_path

__all__ = ["label_path", "read_labels"]

log = logging.getLogger("darknetpy")
PathLike = Union[str, os.PathLike]


def _check_line(fields: list, classes: int) -> tuple:
    """(row, None) for a good ``class x y w h`` line, else (None, what is wrong)."""
    if len(fields) != 5:
        return None, f"expected 5 fields 'class x y w h', found {len(fields)}"
    try:
        cls = int(fields[0])
    except ValueError:
        return None, f"class {fields[0]!r} is not an integer"
    try:
        x, y, w, h = (float(v) for v in fields[1:])
    except ValueError:
        return None, f"coordinates {' '.join(fields[1:])!r} are not numbers"
    if not 0 <= cls < classes:
        return None, f"class_id = {cls}, but it must be from 0 to {classes - 1}"
    for name, v in (("x", x), ("y", y), ("w", w), ("h", h)):
        if not (math.isfinite(v) and 0 <= v <= 1):
            return None, f"{name} = {v:g} is outside [0, 1] (coordinates are relative to the image size)"
    if w <= 0 or h <= 0:
        return None, f"the box size w = {w:g}, h = {h:g} is not positive"
    if x == 0 and y == 0:
        return None, "x = 0, y = 0 (darknet reads it as the end of the boxes)"
    return (cls, x, y, w, h), None


def read_labels(image_path: PathLike, classes: int) -> np.ndarray:
    """The boxes of a training image as float32 (k, 5) rows ``class x y w h`` (relative centre form,
    label-file order), from the label file upstream reads for it (:func:`label_path`).

    Bad lines (not 5 numbers, class outside [0, classes), coordinates outside [0, 1], w or h <= 0,
    x = y = 0) are skipped, each with one warning naming ``file:line`` and what is wrong: upstream
    trains on some of them (a cause of ``IOU: -nan``). A missing label file gives no boxes, with a
    warning, as upstream (an image without objects)."""
    return read_labels_counted(image_path, classes)[0]


def read_labels_counted(image_path: PathLike, classes: int) -> tuple:
    """:func:`read_labels` and the number of bad lines it skipped."""
    image = os.fspath(image_path)
    path = label_path(image)
    if path == image:  # no image extension recognised; do not read the image as text
        return np.zeros((0, 5), np.float32), 0
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        log.warning("Can't open label file %s (%s); image %s is trained as having no objects", path,
                    exc.strerror or exc, image)
        return np.zeros((0, 5), np.float32), 0
    rows = []
    bad = 0
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if not fields:
            continue
        row, problem = _check_line(fields, classes)
        if row is None:
            log.warning("%s:%d: bad label skipped: %s", path, number, problem)
            bad += 1
        else:
            rows.append(row)
    return np.array(rows, dtype=np.float32).reshape(-1, 5), bad
