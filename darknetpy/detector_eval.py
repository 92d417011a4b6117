"""``detector map`` and ``detector valid`` (spec D3.5, D3.6) and YOLO label files (D6.1, D6.2)."""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from .classifier import as_chw
from .data import DataConfig, read_data_cfg, read_list
from .detector import Detector

PathLike = Union[str, os.PathLike]

__all__ = ["label_path", "read_boxes", "evaluate_detector", "MapResult", "validate_detector", "box_iou"]

log = logging.getLogger("darknetpy")

_LABEL_DIRS = [("/images/train2017/", "/labels/train2017/"), ("/images/val2017/", "/labels/val2017/"),
               ("/JPEGImages/", "/labels/"), ("\\images\\train2017\\", "\\labels\\train2017\\"),
               ("\\images\\val2017\\", "\\labels\\val2017\\"), ("\\images\\train2014\\", "\\labels\\train2014\\"),
               ("\\images\\val2014\\", "\\labels\\val2014\\"), ("/images/train2014/", "/labels/train2014/"),
               ("/images/val2014/", "/labels/val2014/"), ("\\JPEGImages\\", "\\labels\\")]
_IMAGE_EXTS = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG", ".bmp", ".BMP", ".ppm", ".PPM", ".tiff", ".TIFF")
_BOX = re.compile(r"\s*([+-]?\d+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)")
# The 80 COCO category ids of upstream's coco_ids table, by class index.
COCO_IDS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 27, 28, 31, 32,
            33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57, 58, 59,
            60, 61, 62, 63, 64, 65, 67, 70, 72, 73, 74, 75, 76, 77, 78, 79, 80, 81, 82, 84, 85, 86, 87, 88, 89, 90)


def label_path(image_path: PathLike) -> str:
    """upstream's replace_image_to_label (spec D6.1): only the COCO/VOC folder names map to labels/;
    otherwise the label sits next to the image with its extension swapped to .txt."""
    s = os.fspath(image_path)
    for old, new in _LABEL_DIRS:
        s = s.replace(old, new, 1)
    s = s.strip(" \t")
    for ext in _IMAGE_EXTS:
        if s.endswith(ext):
            s = s[:-len(ext)] + ".txt"
            break
    if not s.endswith(".txt"):
        log.warning("Failed to infer label file name (check image extension is supported): %s", s)
    return s


def read_boxes(path: PathLike) -> np.ndarray:
    """A YOLO label file as float32 (n, 5) rows ``class x y w h`` (relative centre form); reading stops at the
    first item that does not parse, as upstream's fscanf loop. A missing file gives 0 rows (logged)."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        log.warning("Can't open label file. (This can be normal only if you use MSCOCO): %s", os.fspath(path))
        return np.zeros((0, 5), np.float32)
    rows, pos = [], 0
    while True:
        m = _BOX.match(text, pos)
        if not m:
            break
        try:
            rows.append([int(m.group(1))] + [float(v) for v in m.groups()[1:]])
        except ValueError:
            break
        pos = m.end()
    return np.array(rows, dtype=np.float32).reshape(-1, 5)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """upstream's box_iou in float32 between box a (4,) and boxes b (n, 4), centre form."""
    a = a.astype(np.float32)
    b = b.astype(np.float32).reshape(-1, 4)
    two = np.float32(2)

    def ov(x1, w1, x2, w2):
        return np.minimum(x1 + w1 / two, x2 + w2 / two) - np.maximum(x1 - w1 / two, x2 - w2 / two)

    ow, oh = ov(a[0], a[2], b[:, 0], b[:, 2]), ov(a[1], a[3], b[:, 1], b[:, 3])
    inter = np.where((ow < 0) | (oh < 0), np.float32(0), ow * oh)
    union = a[2] * a[3] + b[:, 2] * b[:, 3] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where((inter == 0) | (union == 0), np.float32(0), inter / union).astype(np.float32)


def _basecfg(path: str) -> str:
    """upstream's basecfg: the file name up to its first '.'."""
    name = path.rsplit("/", 1)[-1]
    if "/" not in path:
        name = name.rsplit("\\", 1)[-1]
    return name.split(".", 1)[0]


def _open_detector(data: DataConfig, cfg: PathLike, weights: PathLike, threads: Optional[int]) -> Detector:
    return Detector(cfg, weights, data=data, threads=threads)


@dataclass
class MapResult:
    """``detector map`` numbers; ``str()`` gives upstream's result lines (spec D3.6)."""
    names: list
    ap: np.ndarray                 # (classes,) average precision per class, 0..1
    tp_at_thresh: np.ndarray       # (classes,) TP/FP counts at conf_thresh
    fp_at_thresh: np.ndarray
    thresh: float
    iou_thresh: float
    points: int
    tp: int
    fp: int
    unique_truth_count: int
    detections_count: int
    avg_iou: float
    lines: list = field(default_factory=list, repr=False)

    @property
    def map(self) -> float:
        return float(np.cumsum(self.ap)[-1] / len(self.ap)) if len(self.ap) else 0.0

    @property
    def precision(self) -> float:
        return float(np.float32(self.tp) / (np.float32(self.tp) + np.float32(self.fp))) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return float(np.float32(self.tp) / np.float32(self.unique_truth_count)) if self.unique_truth_count else 0.0

    @property
    def f1(self) -> float:
        p, r = np.float32(self.precision), np.float32(self.recall)
        with np.errstate(invalid="ignore"):
            return float(np.float32(2) * p * r / (p + r))

    def __str__(self) -> str:
        out = [f"class_id = {i}, name = {n}, ap = {ap * 100:2.2f}%   \t (TP = {tp}, FP = {fp}) "
               for i, (n, ap, tp, fp) in enumerate(zip(self.names, self.ap, self.tp_at_thresh, self.fp_at_thresh))]
        fn = self.unique_truth_count - self.tp
        f1 = self.f1
        f1s = "-nan" if np.isnan(f1) else f"{f1:1.2f}"
        out += ["", f" for conf_thresh = {self.thresh:1.2f}, precision = {self.precision:1.2f}, recall = "
                    f"{self.recall:1.2f}, F1-score = {f1s} ",
                f" for conf_thresh = {self.thresh:0.2f}, TP = {self.tp}, FP = {self.fp}, FN = {fn}, average IoU = "
                f"{self.avg_iou * 100:2.2f} % ", ""]
        used = f"used {self.points} Recall-points" if self.points else "used Area-Under-Curve for each unique Recall"
        out += [f" IoU threshold = {self.iou_thresh * 100:2.0f} %, {used} ",
                f" mean average precision (mAP@{self.iou_thresh:0.2f}) = {self.map:f}, or {self.map * 100:2.2f} % "]
        return "\n".join(out)


def _average_precision(precision: np.ndarray, recall: np.ndarray, points: int) -> float:
    """AP of one class from its precision/recall at every global rank (spec D3.6), in upstream's order."""
    if len(precision) == 0:
        return 0.0
    if points > 0:
        total = 0.0
        for q in range(points):
            r = q * (1.0 / (points - 1))
            sel = precision[recall >= r]
            total += max(float(sel.max()), 0.0) if len(sel) else 0.0
        return total / points
    run_max = np.maximum.accumulate(precision[::-1])[::-1]      # max precision from rank r to the end
    terms = (recall[1:] - recall[:-1]) * run_max[:-1]             # rank r = N-2 .. 0 in reverse
    acc = float(np.cumsum(np.append(terms[::-1], recall[0] * run_max[0]))[-1])
    return acc


def evaluate_detector(data: Union[PathLike, DataConfig], cfg: PathLike, weights: PathLike, *, thresh: float = 0.25,
                      iou_thresh: float = 0.5, points: int = 0, threads: Optional[int] = None,
                      detector: Optional[Detector] = None) -> MapResult:
    """``darknet detector map``: mAP on the .data ``valid`` list (truth from the YOLO label file beside each
    image, spec D6.1). Boxes at score 0.005, NMS 0.45 as the head's nms_kind, the cfg's letter_box."""
    data = read_data_cfg(data) if not isinstance(data, DataConfig) else data
    det = detector or _open_detector(data, cfg, weights, threads)
    try:
        paths = read_list(data.resolve(data.get("valid", "data/train.txt")))
        if data.get("difficult"):
            log.warning("%s: difficult= is not supported yet; its images' truths are not excluded", data.path)
        C = det.classes
        iou_thresh32 = np.float32(iou_thresh)
        dets_p, dets_cls, dets_truth = [], [], []
        truth_count = np.zeros(C, np.int64)
        tp_c, fp_c = np.zeros(C, np.int64), np.zeros(C, np.int64)
        avg_iou, tp, fp, unique = np.float32(0), 0, 0, 0
        for start in range(0, len(paths), 4):
            chunk = paths[start:start + 4]
            images = [as_chw(str(data.resolve(p))) for p in chunk]
            for p, (bbox, _obj, prob) in zip(chunk, det.records(images, 0.005, 0.0, 0.45)):
                truths = read_boxes(data.resolve(label_path(p)))
                ids = truths[:, 0].astype(np.int64)
                for c in ids:
                    if 0 <= c < C:
                        truth_count[c] += 1
                seen_truth: list = []
                for i in range(len(bbox)):
                    ious = box_iou(bbox[i], truths[:, 1:5]) if len(truths) else np.zeros(0, np.float32)
                    for c in np.nonzero(prob[i] > 0)[0]:
                        p_c = prob[i, c]
                        ok = (ids == c) & (ious > iou_thresh32)
                        t, best = -1, np.float32(0)
                        if ok.any():
                            j = int(np.argmax(np.where(ok, ious, -1)))
                            t, best = unique + j, ious[j]
                        dets_p.append(p_c)
                        dets_cls.append(c)
                        dets_truth.append(t)
                        if p_c > np.float32(thresh):
                            if t > -1 and t not in seen_truth:
                                avg_iou += best
                                tp += 1
                                tp_c[c] += 1
                            else:
                                fp += 1
                                fp_c[c] += 1
                        seen_truth.append(t)
                unique += len(truths)
        if tp + fp > 0:
            avg_iou = avg_iou / np.float32(tp + fp)
        n = len(dets_p)
        order = np.argsort(-np.asarray(dets_p, np.float32), kind="stable")
        cls = np.asarray(dets_cls, np.int64)[order] if n else np.zeros(0, np.int64)
        truth = np.asarray(dets_truth, np.int64)[order] if n else np.zeros(0, np.int64)
        first = np.zeros(n, bool)                        # the first (best-ranked) hit of each truth is a TP
        if n:
            hit = np.nonzero(truth >= 0)[0]
            _, idx = np.unique(truth[hit], return_index=True)
            first[hit[idx]] = True
        aps = np.zeros(C)
        for c in range(C):
            mine = cls == c
            ctp = np.cumsum(mine & first)
            cfp = np.cumsum(mine & ~first)
            with np.errstate(divide="ignore", invalid="ignore"):
                prec = np.where(ctp + cfp > 0, ctp / np.maximum(ctp + cfp, 1), 0.0)
                rec = np.where(truth_count[c] > 0, ctp / max(truth_count[c], 1), 0.0)
            aps[c] = _average_precision(prec.astype(np.float64), rec.astype(np.float64), points)
        return MapResult(names=list(det.names), ap=aps, tp_at_thresh=tp_c, fp_at_thresh=fp_c, thresh=thresh,
                         iou_thresh=iou_thresh, points=points, tp=tp, fp=fp, unique_truth_count=unique,
                         detections_count=n, avg_iou=float(avg_iou))
    finally:
        if detector is None:
            det.close()


def validate_detector(data: Union[PathLike, DataConfig], cfg: PathLike, weights: PathLike, *,
                      outfile: Optional[str] = None, threads: Optional[int] = None,
                      detector: Optional[Detector] = None) -> list:
    """``darknet detector valid`` (spec D3.5): boxes at 0.001, NMS 0.6, written per class to
    ``<results>/<outfile><name>.txt`` (VOC, 1-based clipped corners) or, with ``eval=coco`` in the .data,
    to ``<results>/<outfile>.json``. Returns the files written."""
    data = read_data_cfg(data) if not isinstance(data, DataConfig) else data
    det = detector or _open_detector(data, cfg, weights, threads)
    try:
        paths = read_list(data.resolve(data.get("valid", "data/train.list")))
        results = Path(data.get("results", "results"))
        results.mkdir(parents=True, exist_ok=True)
        coco = data.get("eval", "voc") == "coco"
        if coco:
            files = [results / f"{outfile or 'coco_results'}.json"]
        else:
            files = [results / f"{outfile or 'comp4_det_test_'}{name}.txt" for name in det.names]
        handles = [open(f, "w") for f in files]
        entries = 0
        try:
            if coco:
                handles[0].write("[\n")
            for start in range(0, len(paths), 4):
                chunk = paths[start:start + 4]
                images = [as_chw(str(data.resolve(p))) for p in chunk]
                records = det.records(images, 0.001, 0.5, 0.6, relative=False)
                for p, im, (px, _obj, prob) in zip(chunk, images, records):
                    h, w = im.shape[1:]
                    if coco:
                        entries += _write_coco(handles[0], _basecfg(p), px, prob, w, h)
                    else:
                        _write_voc(handles, _basecfg(p), px, prob, w, h)
            if coco:
                text = handles[0]
                if entries:
                    text.seek(text.tell() - 2)
                    text.truncate()
                text.write("\n]\n")
        finally:
            for f in handles:
                f.close()
        return files
    finally:
        if detector is None:
            det.close()


def _write_voc(handles: Sequence, image_id: str, px: np.ndarray, prob: np.ndarray, w: int, h: int) -> None:
    for (x, y, bw, bh), p in zip(px.astype(np.float64), prob):
        x1, x2 = np.float32(x - bw / 2. + 1), np.float32(x + bw / 2. + 1)
        y1, y2 = np.float32(y - bh / 2. + 1), np.float32(y + bh / 2. + 1)
        x1, y1 = max(x1, np.float32(1)), max(y1, np.float32(1))
        x2, y2 = min(x2, np.float32(w)), min(y2, np.float32(h))
        for j in np.nonzero(p)[0]:
            handles[j].write("%s %f %f %f %f %f\n" % (image_id, p[j], x1, y1, x2, y2))


def _write_coco(f, image_id: str, px: np.ndarray, prob: np.ndarray, w: int, h: int) -> int:
    m = re.match(r"\s*[+-]?\d+", image_id)
    num = int(m.group()) if m else 0
    count = 0
    for (x, y, bw, bh), p in zip(px.astype(np.float64), prob):
        x1, x2 = np.float32(x - bw / 2.), np.float32(x + bw / 2.)
        y1, y2 = np.float32(y - bh / 2.), np.float32(y + bh / 2.)
        x1, y1 = max(x1, np.float32(0)), max(y1, np.float32(0))
        x2, y2 = min(x2, np.float32(w)), min(y2, np.float32(h))
        for j in np.nonzero(p > 0)[0]:
            cat = COCO_IDS[j] if j < len(COCO_IDS) else int(j)
            f.write('{"image_id":%d, "category_id":%d, "bbox":[%f, %f, %f, %f], "score":%f},\n'
                    % (num, cat, x1, y1, x2 - x1, y2 - y1, p[j]))
            count += 1
    return count
