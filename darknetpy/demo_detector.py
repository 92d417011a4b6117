"""The detector part of ``darknetpy demo``: 64x64 scenes of the demo's shapes with YOLO label
files, ``detector train`` of the shipped ``cfg/demo_detect.cfg`` from a partial cut of the demo
classifier, ``detector map`` and a picture of the boxes found on validation scenes."""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from .demo import _DRAW, SHAPES, _hsv_to_bgr, shape_colour
from .detector import Detector
from .detector_eval import MapResult, evaluate_detector

__all__ = ["DETECT_CFG", "DetectorDemoResult", "draw_scene", "make_scenes", "train_demo_detector"]

DETECT_CFG = Path(__file__).resolve().parent / "cfg" / "demo_detect.cfg"
SCENE = 64                   # scene side in pixels = the network input
TRAIN_SCENES, VALID_SCENES = 400, 60
DETECT_BATCHES = 400
PICTURE_SCALE = 4            # the picture shows 4 validation scenes at 4x


def draw_scene(rng: np.random.Generator, size: int = SCENE) -> tuple:
    """One uint8 BGR (size, size, 3) scene with 1-3 non-overlapping shapes and its YOLO label
    rows (k, 5): class, centre x, centre y, width, height relative to the scene (the tight box of
    the drawn shape)."""
    image = np.empty((size, size, 3), np.uint8)
    image[:] = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(0, 70))
    boxes: list = []
    rows: list = []
    for _ in range(int(rng.integers(1, 4))):
        for _attempt in range(20):
            k = int(rng.integers(len(SHAPES)))
            r = float(rng.uniform(7, 15))
            centre = (float(rng.uniform(r, size - r)), float(rng.uniform(r, size - r)))
            angle = float(rng.uniform(0, 2 * math.pi))
            mask = np.zeros((size, size, 3), np.uint8)
            _DRAW[SHAPES[k]](mask, centre, r, angle, (255, 255, 255))
            ys, xs = np.nonzero(mask[:, :, 0])
            if not len(xs):
                continue
            box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
            if any(box[0] < b[2] + 1 and b[0] < box[2] + 1 and box[1] < b[3] + 1 and b[1] < box[3] + 1
                   for b in boxes):
                continue
            _DRAW[SHAPES[k]](image, centre, r, angle, shape_colour(SHAPES[k], rng))
            boxes.append(box)
            x0, y0, x1, y1 = box
            rows.append([k, (x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size])
            break
    noise = rng.normal(0, 6, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8), np.array(rows, np.float32).reshape(-1, 5)


def make_scenes(root: Path, seed: int, train: int = TRAIN_SCENES, valid: int = VALID_SCENES) -> Path:
    """Write train/valid scenes as PNG with their label files beside them, the lists, the names and
    ``scenes.data``; returns the .data path."""
    rng = np.random.default_rng([seed, 9])
    for split, n in (("train", train), ("valid", valid)):
        folder = root / split
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for i in range(n):
            image, rows = draw_scene(rng)
            path = folder / f"{split}_{i:04d}.png"
            cv2.imwrite(str(path), image)
            path.with_suffix(".txt").write_text("".join(f"{int(c)} {x:.6f} {y:.6f} {w:.6f} {h:.6f}\n"
                                                        for c, x, y, w, h in rows))
            paths.append(str(path))
        (root / f"{split}.txt").write_text("\n".join(paths) + "\n")
    (root / "shapes.names").write_text("".join(f"{s}\n" for s in SHAPES))
    data = root / "scenes.data"
    data.write_text(f"classes={len(SHAPES)}\ntrain={root / 'train.txt'}\nvalid={root / 'valid.txt'}\n"
                    f"names={root / 'shapes.names'}\nbackup={root / 'backup'}\n")
    return data


@dataclass(frozen=True)
class DetectorDemoResult:
    """The detector stage's files, iterations and mAP@0.5 (:class:`~darknetpy.MapResult`)."""
    data_file: Path
    weights: Path
    iterations: int
    map: MapResult
    picture: Path


def train_demo_detector(work: Path, trunk: Path, picture: Path, *, seed: int, threads: Optional[int],
                        progress: Optional[bool], max_batches: int = DETECT_BATCHES) -> DetectorDemoResult:
    """Scenes in ``work/scenes``, training from the partial weights ``trunk``, mAP on the valid
    scenes and ``picture`` (4 validation scenes with the detected boxes)."""
    from .detector_train import train_detector   # the training modules are imported only when used

    data = make_scenes(work / "scenes", seed)
    trained = train_detector(data, DETECT_CFG, trunk, clear=True, max_batches=max_batches,
                             backup_dir=work / "backup_detect", threads=threads, progress=progress, seed=seed)
    result = evaluate_detector(data, DETECT_CFG, trained.final_weights, threads=threads)
    valid = (work / "scenes" / "valid.txt").read_text().split()[:4]
    tiles = []
    with Detector(DETECT_CFG, trained.final_weights, data=data, threads=threads) as det:
        for path in valid:
            big = cv2.resize(cv2.imread(path), None, fx=PICTURE_SCALE, fy=PICTURE_SCALE,
                             interpolation=cv2.INTER_NEAREST)
            tiles.append(det.detect(big).plot(big))
    grid = np.vstack([np.hstack(tiles[:2]), np.hstack(tiles[2:])])
    if not cv2.imwrite(str(picture), grid):
        raise OSError(f"cannot write the picture {picture}")
    return DetectorDemoResult(data, trained.final_weights, trained.iterations, result, picture)
