"""``darknet detector calc_anchors``: k-means of the training boxes' sizes with 1 - IoU distance (spec D4)."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

import numpy as np

from .data import DataConfig, read_data_cfg, read_list
from .detector_eval import label_path, read_boxes

PathLike = Union[str, os.PathLike]

__all__ = ["calc_anchors", "AnchorsResult", "wh_iou"]

log = logging.getLogger("darknetpy")


def wh_iou(points: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """IoU (n, k) of (w, h) boxes anchored at the same corner."""
    inter = np.minimum(points[:, None, 0], centres[None, :, 0]) * np.minimum(points[:, None, 1], centres[None, :, 1])
    area = points[:, None, 0] * points[:, None, 1] + centres[None, :, 0] * centres[None, :, 1] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / area


@dataclass
class AnchorsResult:
    """Cluster centres (k, 2) in network pixels sorted by area, their mean IoU with the boxes (0..1), the boxes
    per class, and the k-means iterations. ``str()`` is upstream's anchors line."""
    anchors: np.ndarray
    avg_iou: float
    counters_per_class: list
    iterations: int
    width: int

    def anchors_text(self) -> str:
        fmt = "%3.0f,%3.0f" if self.width > 32 else "%2.4f,%2.4f"
        return ", ".join(fmt % (w, h) for w, h in self.anchors)

    def __str__(self) -> str:
        return f"anchors = {self.anchors_text()}"


def _kmeans(points: np.ndarray, k: int, rng: np.random.Generator) -> tuple:
    """upstream's do_kmeans: random distinct points as initial centres, then expectation/maximisation until no
    assignment changes (at most 1000 rounds); returns (centres, maximisation steps)."""
    n = len(points)
    order = np.arange(n)
    for i in range(n - 1, -1, -1):            # Fisher-Yates from the end, as upstream's random_centers
        j = int(rng.integers(i + 1))
        order[i], order[j] = order[j], order[i]
    centres = points[order[:k]].astype(np.float64).copy()
    assign = np.zeros(n, np.int64)
    steps = 0

    def maximise() -> None:
        for c in range(k):
            mine = points[assign == c]
            if len(mine):
                mean = mine.mean(axis=0)
                centres[c] = np.where(mean == 0, centres[c], mean)

    if k == 1:
        maximise()
        steps += 1
    for _ in range(1000):
        new = np.argmin(1 - wh_iou(points, centres), axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        maximise()
        steps += 1
    return centres, steps


def calc_anchors(data: Union[PathLike, DataConfig], num_of_clusters: int = 5, width: int = -1, height: int = -1, *,
                 seed: int = 0, out_dir: Optional[PathLike] = ".", echo=None) -> AnchorsResult:
    """Cluster the label sizes of the .data ``train`` list into *num_of_clusters* anchors for a
    width x height network; writes ``anchors.txt`` and ``counters_per_class.txt`` into *out_dir* (None: no
    files). upstream seeds from the clock; *seed* makes the result reproducible. *echo* receives upstream's
    console lines."""
    say = echo or (lambda s: None)
    if width < 0 or height < 0:
        raise ValueError("calc_anchors needs -width and -height (the network input size), e.g. -width 416 "
                         "-height 416")
    if num_of_clusters < 1:
        raise ValueError(f"num_of_clusters={num_of_clusters} must be >= 1")
    data = read_data_cfg(data) if not isinstance(data, DataConfig) else data
    paths = read_list(data.resolve(data.get("train", "data/train.list")))
    classes = int(data.get("classes", "1") or 1)
    say(f" read labels from {len(paths)} images ")
    counters = [0] * classes
    sizes = []
    for p in paths:
        boxes = read_boxes(data.resolve(label_path(p)))
        for j, (c, x, y, w, h) in enumerate(boxes):
            if max(x, y, w, h) > 1 or min(x, y, w, h) <= 0:
                say(f"\n\nWrong label: {label_path(p)} - j = {j}, x = {x:f}, y = {y:f}, width = {w:f}, "
                    f"height = {h:f} ")
            c = int(c)
            if c >= len(counters):
                counters += [0] * (c + 1 - len(counters))
            if c >= 0:
                counters[c] += 1
            sizes.append((w * np.float32(width), h * np.float32(height)))
    if len(sizes) < num_of_clusters:
        raise ValueError(f"{len(sizes)} boxes in the train list's labels: too few for {num_of_clusters} clusters")
    say("\n all loaded. \n\n calculating k-means++ ...")
    points = np.array(sizes, dtype=np.float64)
    centres, steps = _kmeans(points, num_of_clusters, np.random.default_rng(seed))
    say(f"\n iterations = {steps} \n")
    centres = centres[np.argsort(centres[:, 0] * centres[:, 1], kind="stable")]
    iou = wh_iou(points, centres)
    best = iou[np.arange(len(points)), np.argmin(1 - iou, axis=1)]
    ok = (best >= 0) & (best <= 1)
    result = AnchorsResult(anchors=centres.astype(np.float32), avg_iou=float(best[ok].sum() / len(points)),
                           counters_per_class=counters, iterations=steps, width=width)
    counters_text = "counters_per_class = " + ", ".join(str(c) for c in counters)
    say(f"\n{counters_text}")
    say(f"\n avg IoU = {result.avg_iou * 100:2.2f} % \n")
    if out_dir is not None:
        Path(out_dir, "counters_per_class.txt").write_text(counters_text)
        Path(out_dir, "anchors.txt").write_text(result.anchors_text())
        say("Saving anchors to the file: anchors.txt ")
    say(str(result))
    return result
