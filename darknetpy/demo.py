"""``darknetpy demo``: the whole classifier and detector workflow on generated data, in about a minute.

1. draw a small labelled dataset of shapes (deterministic) as an ILSVRC-2012
   download (:func:`darknetpy.imagenet.make_fake_ilsvrc`);
2. ``imagenet prepare`` it into darknet's lists and ``.data`` file;
3. ``classifier train`` the shipped ``cfg/demo_shapes.cfg``;
4. ``classifier valid`` (top-1 / top-5);
5. ``partial`` the trained weights (the convolutional trunk);
6. fine-tune from the partial file and validate again;
7. ``classifier predict`` one validation image;
8. ``detector train`` a small detector on generated scenes of the same shapes, from the same
   partial file (:mod:`darknetpy.demo_detector`);
9. ``detector map`` on the validation scenes and a picture of the boxes it finds.

:func:`run_demo` reports through an *echo* callable (the CLI passes ``print``);
the library itself prints nothing.
"""
from __future__ import annotations

import contextlib
import logging
import math
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import cv2
import numpy as np

from . import imagenet
from .classifier import Classifier
from .data import read_data_cfg, read_list
from .network import partial
from .results import ValidationResult
from .validation import validate_classifier

if TYPE_CHECKING:
    from .demo_detector import DetectorDemoResult

__all__ = ["CFG", "SHAPES", "DemoResult", "draw_shape", "run_demo"]

log = logging.getLogger("darknetpy")

CFG = Path(__file__).resolve().parent / "cfg" / "demo_shapes.cfg"
SHAPES = ("circle", "square", "triangle", "cross", "ring", "stripes")
WNIDS = tuple(f"n0900{i:04d}" for i in range(1, len(SHAPES) + 1))   # fake synset ids, ILSVRC2012_ID order
TRAIN_PER_CLASS = 120
VAL_PER_CLASS = 30
TRUNK_LAYERS = 6            # layers 0..5 of demo_shapes.cfg: the three conv + maxpool blocks
TRAIN_BATCHES = 300
FINETUNE_BATCHES = 100


# --------------------------------------------------------------------------- data


def _hsv_to_bgr(h: float, s: float, v: float) -> tuple:
    """One OpenCV HSV colour (h in [0, 180), s and v in [0, 255]) as a BGR tuple."""
    hsv = np.array([[[h % 180, s, v]]], dtype=np.uint8)
    return tuple(int(c) for c in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0, 0])


def draw_shape(shape: str, rng: np.random.Generator) -> np.ndarray:
    """One uint8 BGR (H, W, 3) image of *shape* (one of :data:`SHAPES`).

    A bright shape on a dark background; each shape has its own hue family
    (jittered), so colour and form both tell the class.  Random size (40-64 px
    per side), position, scale and rotation and mild noise, all from *rng*, so
    the same generator state gives the same image.
    """
    h, w = (int(v) for v in rng.integers(40, 65, size=2))
    image = np.empty((h, w, 3), dtype=np.uint8)
    image[:] = _hsv_to_bgr(rng.uniform(0, 180), rng.uniform(0, 255), rng.uniform(0, 70))
    colour = shape_colour(shape, rng)
    s = min(h, w)
    r = float(rng.uniform(0.28, 0.42)) * s
    cx = w / 2 + float(rng.uniform(-0.12, 0.12)) * s
    cy = h / 2 + float(rng.uniform(-0.12, 0.12)) * s
    angle = float(rng.uniform(0, 2 * math.pi))
    _DRAW[shape](image, (cx, cy), r, angle, colour)
    noise = rng.normal(0, 6, size=image.shape)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def shape_colour(shape: str, rng: np.random.Generator) -> tuple:
    """A bright BGR colour in *shape*'s hue family (jittered)."""
    hue = SHAPES.index(shape) * 180 / len(SHAPES) + rng.uniform(-10, 10)
    return _hsv_to_bgr(hue, rng.uniform(150, 255), rng.uniform(170, 255))


def _polygon(image: np.ndarray, centre: tuple[float, float], r: float, angle: float, corners: int,
             colour: tuple) -> None:
    t = angle + 2 * math.pi * np.arange(corners) / corners
    pts = np.stack([centre[0] + r * np.cos(t), centre[1] + r * np.sin(t)], axis=1)
    cv2.fillPoly(image, [np.round(pts).astype(np.int32)], colour, lineType=cv2.LINE_AA)


def _circle(image, centre, r, angle, colour) -> None:
    cv2.circle(image, tuple(int(round(v)) for v in centre), int(round(r)), colour, -1, cv2.LINE_AA)


def _ring(image, centre, r, angle, colour) -> None:
    cv2.circle(image, tuple(int(round(v)) for v in centre), int(round(r * 0.8)), colour,
               max(2, int(r * 0.3)), cv2.LINE_AA)


def _cross(image, centre, r, angle, colour) -> None:
    for a in (angle, angle + math.pi / 2):
        dx, dy = r * math.cos(a), r * math.sin(a)
        p0 = (int(round(centre[0] - dx)), int(round(centre[1] - dy)))
        p1 = (int(round(centre[0] + dx)), int(round(centre[1] + dy)))
        cv2.line(image, p0, p1, colour, max(2, int(r * 0.35)), cv2.LINE_AA)


def _stripes(image, centre, r, angle, colour) -> None:
    a = angle % math.pi
    for k in (-1, 0, 1):
        ox, oy = k * r * 0.7 * -math.sin(a), k * r * 0.7 * math.cos(a)
        dx, dy = r * math.cos(a), r * math.sin(a)
        p0 = (int(round(centre[0] + ox - dx)), int(round(centre[1] + oy - dy)))
        p1 = (int(round(centre[0] + ox + dx)), int(round(centre[1] + oy + dy)))
        cv2.line(image, p0, p1, colour, max(2, int(r * 0.22)), cv2.LINE_AA)


_DRAW = {
    "circle": _circle,
    "square": lambda im, c, r, a, col: _polygon(im, c, r, a, 4, col),
    "triangle": lambda im, c, r, a, col: _polygon(im, c, r, a, 3, col),
    "cross": _cross,
    "ring": _ring,
    "stripes": _stripes,
}


def _image_fn(wnid: str, index: int, rng: np.random.Generator) -> np.ndarray:
    return draw_shape(SHAPES[WNIDS.index(wnid)], rng)


# --------------------------------------------------------------------------- run


@dataclass(frozen=True)
class DemoResult:
    """What the demo produced: files, accuracies and stage timings (seconds)."""

    workdir: Path
    data_file: Path
    weights: Path
    partial_weights: Path
    finetuned_weights: Path
    valid: ValidationResult
    finetuned_valid: ValidationResult
    prediction: str
    detector: DetectorDemoResult
    timings: dict

    @property
    def chance(self) -> float:
        return 1.0 / len(SHAPES)


@contextlib.contextmanager
def _workdir(path: Optional[str]) -> Iterator[Path]:
    if path is not None:
        p = Path(path).resolve()
        p.mkdir(parents=True, exist_ok=True)
        yield p
        return
    with tempfile.TemporaryDirectory(prefix="darknetpy-demo-") as tmp:
        yield Path(tmp)


def _train(data: Path, weights: Optional[Path], backup: Path, max_batches: int, seed: int,
           threads: Optional[int], progress: Optional[bool]):
    from .train import train_classifier   # the training module is imported only when used

    backup.mkdir(parents=True, exist_ok=True)
    return train_classifier(data, CFG, weights, clear=weights is not None, max_batches=max_batches,
                            backup_dir=backup, threads=threads, progress=progress, seed=seed)


def run_demo(workdir: Optional[str] = None, *, seed: int = 0, threads: Optional[int] = None,
             progress: Optional[bool] = None, echo: Optional[Callable[[str], None]] = None,
             train_batches: int = TRAIN_BATCHES, finetune_batches: int = FINETUNE_BATCHES,
             detect_batches: Optional[int] = None, picture: Optional[str] = None) -> DemoResult:
    """Run the demo in *workdir* (default: a temporary folder, deleted afterwards).

    *echo* receives the report lines (default: the ``darknetpy`` logger at INFO). The picture of
    the detected boxes goes to *picture* (default ``demo_detections.jpg`` in *workdir*, or in the
    current directory without one). Returns a :class:`DemoResult`; its paths other than the
    picture are gone when *workdir* was None.
    """
    from .demo_detector import DETECT_BATCHES, DETECT_CFG, train_demo_detector

    picture_path = Path(picture if picture is not None else Path(workdir or ".") / "demo_detections.jpg").resolve()
    say = echo or (lambda text: log.info("%s", text))
    timings: dict[str, float] = {}
    with _workdir(workdir) as work:
        say(f"darknetpy demo in {work}")
        t = time.perf_counter()
        download = imagenet.make_fake_ilsvrc(work / "download", WNIDS, TRAIN_PER_CLASS, VAL_PER_CLASS,
                                             image_fn=_image_fn, seed=seed)
        names = work / "shapes.names"
        names.write_text("".join(f"{s}\n" for s in SHAPES))
        timings["generate"] = time.perf_counter() - t
        say(f"\n[1/9] drew {len(SHAPES)} shapes x ({TRAIN_PER_CLASS} train + {VAL_PER_CLASS} val) images "
            f"in the ILSVRC-2012 layout: {download}  ({timings['generate']:.1f} s)")

        t = time.perf_counter()
        report = imagenet.prepare(download, work / "imagenet", names_list=names, progress=progress)
        data = report.data_file
        timings["prepare"] = time.perf_counter() - t
        say(f"\n[2/9] darknetpy imagenet prepare {download} {work / 'imagenet'} --names {names}"
            f"  ({timings['prepare']:.1f} s)\n{report}")

        t = time.perf_counter()
        trained = _train(data, None, work / "backup", train_batches, seed, threads, progress)
        timings["train"] = time.perf_counter() - t
        say(f"\n[3/9] darknetpy classifier train {data} {CFG} -dont_show  ({timings['train']:.1f} s)\n"
            f"{trained.iterations} iterations, final loss {_last_loss(trained)}; "
            f"weights: {trained.final_weights}")

        t = time.perf_counter()
        valid = validate_classifier(data, CFG, trained.final_weights, progress=progress, threads=threads)
        timings["valid"] = time.perf_counter() - t
        say(f"\n[4/9] darknetpy classifier valid {data} {CFG} {trained.final_weights}"
            f"  ({timings['valid']:.1f} s)\n{valid}")

        t = time.perf_counter()
        conv = work / f"demo_shapes.conv.{TRUNK_LAYERS}"
        loaded = partial(CFG, trained.final_weights, conv, TRUNK_LAYERS)
        timings["partial"] = time.perf_counter() - t
        say(f"\n[5/9] darknetpy partial {CFG} {trained.final_weights} {conv} {TRUNK_LAYERS}\n"
            f"copied the weights of {loaded} layers (the convolutional trunk)")

        t = time.perf_counter()
        tuned = _train(data, conv, work / "backup_finetune", finetune_batches, seed + 1, threads, progress)
        tuned_valid = validate_classifier(data, CFG, tuned.final_weights, progress=progress,
                                          threads=threads)
        timings["finetune"] = time.perf_counter() - t
        say(f"\n[6/9] darknetpy classifier train {data} {CFG} {conv} -clear --max-batches "
            f"{finetune_batches}  (fine-tune, "
            f"{tuned.iterations} iterations, {timings['finetune']:.1f} s with valid)\n{tuned_valid}")

        t = time.perf_counter()
        image = read_list(read_data_cfg(data).resolve(read_data_cfg(data).valid))[0]
        with Classifier(CFG, tuned.final_weights, data=data, threads=threads) as clf:
            result = clf.predict(image, top=clf.top)
        prediction = f"{image}: Predicted in {result.time_ms:f} milli-seconds.\n{result}"
        timings["predict"] = time.perf_counter() - t
        say(f"\n[7/9] darknetpy classifier predict {data} {CFG} {tuned.final_weights} {image}\n{prediction}")

        t = time.perf_counter()
        detected = train_demo_detector(work, conv, picture_path, seed=seed, threads=threads, progress=progress,
                                       max_batches=detect_batches or DETECT_BATCHES)
        timings["detector"] = time.perf_counter() - t
        say(f"\n[8/9] darknetpy detector train {detected.data_file} {DETECT_CFG} {conv} -clear  "
            f"({detected.iterations} iterations; {timings['detector']:.1f} s with the scenes, mAP and picture)\n"
            f"\n[9/9] darknetpy detector map {detected.data_file} {DETECT_CFG} {detected.weights}\n{detected.map}\n"
            f"picture of the boxes found on 4 validation scenes: {detected.picture}")

        out = DemoResult(work, data, trained.final_weights, conv, tuned.final_weights, valid, tuned_valid,
                         prediction, detected, timings)
        say(_summary(out))
        return out


def _last_loss(trained) -> str:
    history = list(getattr(trained, "loss_history", []) or [])
    return f"{float(history[-1]):.4f}" if history else "n/a"


def _summary(r: DemoResult) -> str:
    total = sum(r.timings.values())
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in r.timings.items())
    return (f"\nSummary: {len(SHAPES)} classes (chance top-1 {r.chance:.3f})\n"
            f"  trained from scratch: top-1 {r.valid.top1:.3f}, top-{r.valid.k} {r.valid.topk:.3f} "
            f"on {r.valid.count} validation images\n"
            f"  fine-tuned from partial: top-1 {r.finetuned_valid.top1:.3f}, "
            f"top-{r.finetuned_valid.k} {r.finetuned_valid.topk:.3f}\n"
            f"  detector from the partial: mAP@0.5 {r.detector.map.map:.3f} "
            f"({r.detector.map.unique_truth_count} boxes in the validation scenes)\n"
            f"  time: {total:.1f} s ({stages})")
