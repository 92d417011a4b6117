"""YOLO detection: ``darknet detector test`` as an object (spec D1-D3).

Boxes are decoded and suppressed in the engine exactly as upstream's
``get_network_boxes`` + ``do_nms_sort``/``diounms_sort``; this module prepares
images (``resize_image`` or ``letterbox_image``), and formats the results as
upstream's console lines, ``-out`` JSON and ``-save_labels`` files.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Sequence, Union

import numpy as np

from .classifier import as_chw
from .data import DataConfig, read_data_cfg, read_lines
from .errors import CfgError
from .image import letterbox_image, resize_image
from .network import Network, NetworkOwner

PathLike = Union[str, os.PathLike]

__all__ = ["Detector", "Detections", "Detection", "NMS_KINDS"]

log = logging.getLogger("darknetpy")

NMS_KINDS = ("default", "greedynms", "diounms")
_HIDDEN = "dont_show"  # upstream hides classes whose name starts with this from the drawing and console


@dataclass(frozen=True)
class Detection:
    """One box: its best class and score, corners in pixels of the original image."""
    class_id: int
    name: str
    score: float
    box: tuple          # (x1, y1, x2, y2) pixels
    probs: np.ndarray   # (classes,) scores of every class (0 where <= thresh)


def _c_round(v: float) -> float:
    """C's round(): half away from zero."""
    return math.copysign(math.floor(abs(v) + 0.5), v)


def _pct(p: np.float32) -> str:
    return "%.0f" % float(np.float32(p) * np.float32(100))


class Detections:
    """The detections of one image, in upstream's record order after NMS.

    ``relative`` (N, 4) centre x, y, width, height relative to the image (upstream's
    ``bbox``); ``boxes`` (N, 4) x1, y1, x2, y2 and ``xywh`` centre x, y, width, height in
    pixels; ``scores`` and ``class_ids`` of each record's best class (ties: lower index);
    ``probs`` (N, classes) every class's score (objectness x class probability, 0 where it
    is not above the threshold); ``objectness`` (N,).
    """

    def __init__(self, relative: np.ndarray, objectness: np.ndarray, probs: np.ndarray,
                 image_size: tuple, names: Sequence[str], thresh: float, path: Optional[str] = None):
        keep = probs.max(axis=1) > 0 if probs.size else np.zeros(len(probs), bool)
        self.relative = np.ascontiguousarray(relative[keep], dtype=np.float32)
        self.objectness = np.ascontiguousarray(objectness[keep], dtype=np.float32)
        self.probs = np.ascontiguousarray(probs[keep], dtype=np.float32)
        self.image_size = tuple(image_size)          # (width, height)
        self.class_names = list(names)
        self.thresh = float(thresh)
        self.path = path
        w, h = np.float32(image_size[0]), np.float32(image_size[1])
        r = self.relative
        self.xywh = np.stack([r[:, 0] * w, r[:, 1] * h, r[:, 2] * w, r[:, 3] * h], axis=1).astype(np.float32)
        self.boxes = np.stack([(r[:, 0] - r[:, 2] / 2) * w, (r[:, 1] - r[:, 3] / 2) * h,
                               (r[:, 0] + r[:, 2] / 2) * w, (r[:, 1] + r[:, 3] / 2) * h],
                              axis=1).astype(np.float32).reshape(-1, 4)
        self.class_ids = self.probs.argmax(axis=1).astype(np.int64) if len(self.probs) else np.zeros(0, np.int64)
        self.scores = self.probs[np.arange(len(self.probs)), self.class_ids] if len(self.probs) \
            else np.zeros(0, np.float32)

    @property
    def names(self) -> list:
        return [self._name(c) for c in self.class_ids]

    def _name(self, c: int) -> str:
        return self.class_names[c] if c < len(self.class_names) else str(c)

    def __len__(self) -> int:
        return len(self.scores)

    def __iter__(self) -> Iterator[Detection]:
        return (self[i] for i in range(len(self)))

    def __getitem__(self, i: int) -> Detection:
        i = range(len(self))[i]          # IndexError and negative indices as a list
        c = int(self.class_ids[i])
        return Detection(c, self._name(c), float(self.scores[i]), tuple(float(v) for v in self.boxes[i]),
                         self.probs[i])

    # ---- upstream's text outputs ------------------------------------------
    def lines(self, ext_output: bool = False) -> list:
        """upstream's console lines (draw_detections_v3, spec D3.2): records by left edge, the best shown
        class first, then every other class above the threshold."""
        hidden = np.array([self._name(j).startswith(_HIDDEN) for j in range(self.probs.shape[1])], bool)
        shown = np.where(hidden, np.float32(-1), self.probs)
        best_of = shown.argmax(axis=1) if len(self) else np.zeros(0, np.int64)   # ties: the lower index
        selected = np.nonzero(shown[np.arange(len(self)), best_of] > 0)[0]
        left = self.relative[selected, 0] - self.relative[selected, 2] / 2
        w, h = np.float32(self.image_size[0]), np.float32(self.image_size[1])
        out = []
        for i in selected[np.argsort(left, kind="stable")]:   # stable, as glibc's merge sort
            best = int(best_of[i])
            x, y, bw, bh = self.relative[i]
            geom = ""
            if ext_output:
                geom = "\t(left_x: %4.0f   top_y: %4.0f   width: %4.0f   height: %4.0f)" % (
                    _c_round(float((x - bw / 2) * w)), _c_round(float((y - bh / 2) * h)),
                    _c_round(float(bw * w)), _c_round(float(bh * h)))
            out.append(f"{self._name(best)}: {_pct(self.probs[i, best])}%{geom}")
            for j in np.nonzero(self.probs[i])[0]:
                if j != best:
                    out.append(f"{self._name(j)}: {_pct(self.probs[i, j])}%{geom}")
        return out

    def __str__(self) -> str:
        return "\n".join(self.lines(ext_output=True))

    def __repr__(self) -> str:
        return f"<Detections {len(self)} boxes in {self.image_size[0]}x{self.image_size[1]}>"

    def _objects(self) -> list:
        objs = []
        for i in range(len(self)):
            for j in range(self.probs.shape[1]):
                if self.probs[i, j] > 0.005 and not self._name(j).startswith(_HIDDEN):
                    x, y, w, h = (float(v) for v in self.relative[i])
                    objs.append({"class_id": j, "name": self._name(j),
                                 "relative_coordinates": {"center_x": x, "center_y": y, "width": w, "height": h},
                                 "confidence": float(self.probs[i, j])})
        return objs

    def to_dict(self, frame_id: int = 1) -> dict:
        """One frame of upstream's ``-out`` JSON (spec D3.3)."""
        return {"frame_id": frame_id, "filename": self.path or "", "objects": self._objects()}

    def to_json(self, frame_id: int = 1) -> str:
        """The frame as upstream writes it (its spacing and %f numbers; parse with json.loads)."""
        objs = ", \n".join(
            '  {"class_id":%d, "name":"%s", "relative_coordinates":{"center_x":%f, "center_y":%f, "width":%f, '
            '"height":%f}, "confidence":%f}' % (o["class_id"], o["name"], *o["relative_coordinates"].values(),
                                                 o["confidence"]) for o in self._objects())
        return ('{\n "frame_id":%d, \n "filename":"%s", \n "objects": [ \n%s\n ] \n}'
                % (frame_id, self.path or "", objs))

    def label_lines(self) -> list:
        """``-save_labels`` lines (spec D3.4): best class, relative centre box."""
        return ["%d %2.4f %2.4f %2.4f %2.4f" % (c, *(float(v) for v in r))
                for c, r in zip(self.class_ids, self.relative)]

    def plot(self, image: Any, channel_order: str = "bgr") -> np.ndarray:
        """Draw boxes and labels with OpenCV on a copy of *image* (a path or uint8 HWC); returns BGR uint8."""
        import cv2

        if isinstance(image, (str, os.PathLike)):
            canvas = cv2.imread(os.fspath(image), cv2.IMREAD_COLOR)
        else:
            canvas = np.ascontiguousarray(np.asarray(image, dtype=np.uint8))
            if canvas.ndim == 2:
                canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
            elif channel_order == "rgb":
                canvas = canvas[:, :, ::-1].copy()
            else:
                canvas = canvas.copy()
        classes = max(self.probs.shape[1], 1)
        thick = max(1, int(canvas.shape[0] * 0.002))
        for i in np.argsort(self.scores, kind="stable"):  # strongest drawn last, as upstream
            c = int(self.class_ids[i])
            hue = (c * 123457 % classes) / classes
            colour = tuple(int(v) for v in cv2.cvtColor(np.uint8([[[hue * 179, 220, 255]]]),
                                                        cv2.COLOR_HSV2BGR)[0, 0])
            edge = np.array(canvas.shape[1::-1] * 2, np.float32)   # an untrained net's boxes can be infinite
            x1, y1, x2, y2 = (int(round(float(v))) for v in np.clip(np.nan_to_num(self.boxes[i]), -1, edge))
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, thick)
            label = f"{self._name(c)} {self.scores[i] * 100:.0f}%"
            (tw, th), _ = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, 0.4, 1)
            cv2.rectangle(canvas, (x1, y1 - th - 4), (x1 + tw + 2, y1), colour, -1)
            cv2.putText(canvas, label, (x1 + 1, y1 - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        return canvas


def cfg_letter_box(cfg: PathLike) -> bool:
    """The ``[net] letter_box`` value of a cfg (upstream's default 0)."""
    section = None
    with open(cfg, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = "".join(raw.split())
            if line.startswith("["):
                if section is not None:
                    break
                section = line.lower()
            elif section in ("[net]", "[network]") and line.startswith("letter_box="):
                return bool(int(float(line.split("=", 1)[1] or 0)))
    return False


def _read_names(names: Union[None, PathLike, Sequence[str]]) -> Optional[list]:
    if names is None:
        return None
    if isinstance(names, (str, os.PathLike)):
        return read_lines(names)
    return [str(n) for n in names]


class Detector(NetworkOwner):
    """A darknet detector ready for ``detector test`` (spec D3.1).

    Builds *cfg* with *batch* images per forward and batch norm fused, loads *weights*.
    Class names come from *names* (a list or a file), else the ``names`` of the ``.data``
    file *data*. ``letterbox=True`` (or ``letter_box=1`` in the cfg) feeds images with
    ``letterbox_image`` instead of ``resize_image``. NMS follows the last detection head's
    ``nms_kind``/``beta_nms``. Raises ``CfgError`` for a cfg without a detection head and
    when the classes of the head, the ``.data`` file and the names disagree. *device* is ``"cpu"``
    or a GPU (``"cuda"``, ``"cuda:N"``; see :class:`Network`), *low_memory* as :class:`Network`'s.
    """

    def __init__(self, cfg: PathLike, weights: Optional[PathLike], names: Union[None, PathLike, Sequence[str]] = None,
                 *, data: Union[None, PathLike, DataConfig] = None, batch: int = 1, letterbox: bool = False,
                 threads: Optional[int] = None, device: str = "cpu", low_memory: bool = False):
        self.data = read_data_cfg(data) if isinstance(data, (str, os.PathLike)) else data
        self.network = Network(cfg, weights, batch=batch, fuse=True, threads=threads, device=device,
                               low_memory=low_memory)
        try:
            head = self.network._handle.detector_info()
            if head["layer"] < 0:
                raise CfgError(f"{os.fspath(cfg)} has no detection layer ([yolo]): it is not a detector cfg; use "
                               "darknetpy.Classifier for a classifier")
            self.head_layer: int = head["layer"]
            self.classes: int = head["classes"]
            self.nms_kind: str = NMS_KINDS[head["nms_kind"]]
            self.beta_nms: float = head["beta_nms"]
            if names is None and self.data is not None and self.data.names is not None:
                names = self.data.resolve(self.data.names)
            self.names: list = _read_names(names) or [str(i) for i in range(self.classes)]
            self._check_classes(cfg, names)
        except BaseException:
            self.network.close()
            raise
        self.letterbox: bool = bool(letterbox) or cfg_letter_box(cfg)

    def _check_classes(self, cfg: PathLike, names: Any) -> None:
        where = f"[yolo] layer {self.head_layer} of {os.fspath(cfg)}"
        if self.data is not None and any(k == "classes" for k, _ in self.data.options) \
                and self.data.classes != self.classes:
            raise CfgError(f"{self.data.path}: classes={self.data.classes} but {where} has classes={self.classes}; "
                           "set the same classes= in the .data file and in every [yolo] layer (and filters="
                           "(classes+5)*len(mask) in the convolution before each)")
        if names is not None and len(self.names) != self.classes:
            source = os.fspath(names) if isinstance(names, (str, os.PathLike)) else "names="
            raise CfgError(f"{source}: {len(self.names)} names but {where} has classes={self.classes}; the names "
                           "file needs one class name per line, one line per class")

    @property
    def width(self) -> int:
        return self.network.width

    @property
    def height(self) -> int:
        return self.network.height

    def preprocess(self, image: np.ndarray) -> np.ndarray:
        """float32 RGB (C, H, W) -> the network input, as upstream's detector test."""
        if self.letterbox:
            return letterbox_image(image, self.width, self.height)
        return resize_image(image, self.width, self.height)

    def records(self, images: Sequence[np.ndarray], thresh: float, hier_thresh: float, nms: float,
                letterbox: Optional[bool] = None, relative: bool = True) -> list:
        """Raw records per image (bbox centre form, objectness, prob) after NMS, in upstream's order: the
        engine's get_network_boxes + NMS for float32 RGB (C, H, W) images. Boxes are relative to the image,
        or in its pixels with ``relative=False`` (upstream's NMS then runs on pixel boxes, which changes
        DIoU-based suppression for non-square images)."""
        letter = self.letterbox if letterbox is None else letterbox
        kind = NMS_KINDS.index(self.nms_kind)
        out = []
        net, b = self.network, self.network.batch
        for start in range(0, len(images), b):
            chunk = images[start:start + b]
            prep = letterbox_image if letter else resize_image
            x = np.stack([prep(im, self.width, self.height) for im in chunk])
            with net._lock:
                net._handle.forward(np.ascontiguousarray(x.reshape(len(x), -1)))
                for i, im in enumerate(chunk):
                    out.append(net._handle.boxes(i, im.shape[2], im.shape[1], thresh, hier_thresh, letter, relative,
                                                 nms, kind, self.beta_nms))
        return out

    def detect(self, images: Any, thresh: float = 0.25, nms: float = 0.45, hier_thresh: float = 0.5, *,
               channel_order: str = "bgr") -> Union[Detections, list]:
        """Detect objects: *images* is a path, a uint8 (H, W, 3) BGR image (``channel_order='rgb'`` for RGB),
        a float32 RGB (C, H, W) image in [0, 1], or a list of these (returns a list)."""
        batch = isinstance(images, (list, tuple))
        items = list(images) if batch else [images]
        chw = [as_chw(im, channel_order) for im in items]
        recs = self.records(chw, thresh, hier_thresh, nms)
        dets = [Detections(b, o, p, (im.shape[2], im.shape[1]), self.names, thresh,
                           os.fspath(item) if isinstance(item, (str, os.PathLike)) else None)
                for (b, o, p), im, item in zip(recs, chw, items)]
        return dets if batch else dets[0]

    __call__ = detect



def json_document(frames: Sequence[str]) -> str:
    """upstream's ``-out`` file around frames from :meth:`Detections.to_json`."""
    return "[\n" + ", \n".join(frames) + "\n]"
