"""Image classification as darknet's ``classifier predict`` (spec §6.5); validation lives in ``validation``.

Images reach the network exactly as upstream prepares them: decoded to RGB
float32 (C, H, W) in [0, 1], the shorter side scaled to the network width with
darknet's own bilinear resize, then a centre crop of the network size (spec
§5.3, §5.4).  The best classes are ranked with darknet's ``top_k`` (spec §6.3).

Accepted images (see :func:`as_chw`): a path (decoded with OpenCV, as the CLI
does), a uint8 (H, W, 3) array in BGR order (``cv2.imread``) or RGB with
``channel_order="rgb"``, a uint8 (H, W) grey array, or a float32 (C, H, W) RGB
array in [0, 1].  A list/tuple of these, a uint8 (N, H, W, 3) array or a
float32 (N, C, H, W) array is a batch.
"""
from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np

from .cfgfile import read_cfg
from .data import DataConfig, read_data_cfg, read_lines
from .errors import CfgError, InputError
from .image import load_image, resize_min_center_crop, to_chw
from .network import Network, NetworkOwner, PathLike
from .results import Classification, top_k

__all__ = ["Classifier", "as_chw", "check_classifier_cfg", "classify", "preprocess"]

log = logging.getLogger("darknetpy")

# detection heads, by section name: checked before a network is built (built layers say it with caps)
DETECTOR_SECTIONS = ("yolo", "region", "detection", "gaussian_yolo")


# --------------------------------------------------------------------------- cfg checks


def _last_section(cfg: PathLike) -> str:
    """Name (lower case) of the last layer section of a cfg, ignoring ``[cost]``."""
    names = [sec.name for sec in read_cfg(cfg)[1:]]
    return next((name for name in reversed(names) if name != "cost"), "")


def _detector_error(cfg: PathLike, section: str, classes: Optional[int] = None) -> CfgError:
    chance = f"1/{classes}" if classes else "1/classes"
    return CfgError(
        f"{os.fspath(cfg)}: the last layer is [{section}], so this is a detector cfg, not a classifier. "
        "classifier predict/valid rank the first `classes` values of the network output; for a detector "
        "those are box coordinates and objectness scores of the first grid cells, not class scores, so "
        f"top-1 would be about {chance} (0.001 with imagenet1k.data). Use a classification cfg "
        "(e.g. darknet19.cfg, darknet53.cfg) with its weights, or a detector API for detection.")


def check_classifier_cfg(cfg: PathLike) -> None:
    """Raise ``CfgError`` when *cfg* ends in a detection layer (spec §8.3)."""
    section = _last_section(cfg)
    if section in DETECTOR_SECTIONS:
        raise _detector_error(cfg, section)


def check_network(net: Network, classes: Optional[int]) -> None:
    """The detector pitfall and darknet's class-count check (spec §4.8, §6.5)."""
    out = net.layers[net.output_layer]
    if "detection" in out.caps:
        raise _detector_error(net.cfg_path, out.type, classes)
    last = net.layers[-1]
    if classes is not None and last.type in ("softmax", "cost") and classes != last.outputs:
        raise CfgError(
            f"Error: num of filters = {last.outputs} in the last conv-layer in cfg-file doesn't match to "
            f"classes = {classes} in data-file ({net.cfg_path} gives {last.outputs} outputs; set filters= "
            "of the last [convolutional] layer to the classes of the .data file, or use the matching "
            ".data file)")


# --------------------------------------------------------------------------- images


def as_chw(image: Any, channel_order: str = "bgr") -> np.ndarray:
    """One image as float32 RGB (C, H, W) in [0, 1].

    A path is decoded with OpenCV (BGR, converted to RGB, /255: spec §5.1);
    uint8 (H, W, 3) arrays are in *channel_order* ("bgr" from ``cv2.imread``
    or "rgb"), uint8 (H, W) arrays are grey; float32 (C, H, W) arrays are taken
    as RGB in [0, 1] unchanged.  Raises ``TypeError`` for other types and
    dtypes, ``InputError`` for a float32 array that is not (3, H, W).
    """
    if isinstance(image, (str, os.PathLike)):
        return load_image(image)
    a = np.asarray(image) if isinstance(image, np.ndarray) else None
    if a is not None and a.dtype == np.uint8 and (a.ndim == 2 or (a.ndim == 3 and a.shape[2] == 3)):
        return to_chw(a, channel_order)
    if a is not None and a.dtype == np.float32 and a.ndim == 3:
        if a.shape[0] != 3:
            raise InputError(f"a float32 image must be RGB (3, H, W), got shape {a.shape}"
                             + ("; for (H, W, 3) use image.transpose(2, 0, 1)" if a.shape[2] == 3 else ""))
        return np.ascontiguousarray(a)
    what = f"{a.dtype} array of shape {a.shape}" if a is not None else type(image).__name__
    raise TypeError(f"cannot classify a {what}: pass a path, a uint8 (H, W, 3) BGR image (cv2.imread; "
                    "channel_order='rgb' for RGB), a uint8 (H, W) grey image, a float32 (C, H, W) RGB image "
                    "in [0, 1], or a list of these")


def preprocess(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """darknet's predict/valid pipeline (spec §5.4): ``resize_min(width)`` then a
    centre crop of width x height.  *image* is float32 RGB (C, H, W); returns a
    new or the same array of shape (C, height, width)."""
    return resize_min_center_crop(image, width, width, height)


def _prepare(image: Any, net: Network, channel_order: str) -> np.ndarray:
    """One input, ready for *net*: float32 (C, H, W) of the network size pass through."""
    chw = as_chw(image, channel_order)
    if chw.shape == net.input_shape and not isinstance(image, (str, os.PathLike)) \
            and np.asarray(image).dtype == np.float32:
        return chw
    return preprocess(chw, net.width, net.height)


def _as_items(images: Any) -> tuple[list, bool]:
    """(list of single images, whether *images* was a batch)."""
    if isinstance(images, (list, tuple)):
        return list(images), True
    if isinstance(images, np.ndarray) and images.ndim == 4:
        return list(images), True
    return [images], False



def _names_for(indices: np.ndarray, names: Optional[Sequence[str]]) -> tuple[str, ...]:
    """Class names of *indices*; the index as text where no name exists."""
    if names is None:
        return tuple(str(i) for i in indices)
    return tuple(names[i] if i < len(names) else str(i) for i in indices)


def _classify(net: Network, images: Any, top: int, names: Optional[Sequence[str]], channel_order: str
              ) -> Union[Classification, list[Classification]]:
    """Prepare and forward images one by one; rank all outputs (spec §6.5)."""
    items, is_batch = _as_items(images)
    results = []
    for image in items:
        x = _prepare(image, net, channel_order)
        start = time.perf_counter()
        output = net.predict(x)[0]
        ms = (time.perf_counter() - start) * 1000.0
        idx = top_k(output, top)
        path = os.fspath(image) if isinstance(image, (str, os.PathLike)) else None
        results.append(Classification(idx, output[idx], _names_for(idx, names), output, ms, path))
    return results if is_batch else results[0]


def _read_names(names: Union[None, PathLike, Sequence[str]]) -> Optional[list[str]]:
    if names is None:
        return None
    if isinstance(names, (str, os.PathLike)):
        return read_lines(names)
    return [str(n) for n in names]


# --------------------------------------------------------------------------- Classifier


class Classifier(NetworkOwner):
    """A darknet classifier ready for prediction: ``classifier predict`` as an object.

    Builds the network with batch 1 and batch norm fused (spec §5.4).  *data*
    is a ``.data`` file (or a :class:`~darknetpy.data.DataConfig`) giving
    ``classes``, ``top`` and the class names (``names``, else ``labels``);
    *names* (a list or a file with one name per line) overrides those.
    Raises ``CfgError`` for a detector cfg (spec §8.3) and when the classes of
    *data* differ from the outputs of a softmax/cost head (spec §6.5).
    *device* is ``"cpu"`` or a GPU (``"cuda"``, ``"cuda:N"``; see :class:`Network`), *low_memory*
    as :class:`Network`'s.
    """

    def __init__(self, cfg: PathLike, weights: Optional[PathLike], *,
                 data: Union[None, PathLike, DataConfig] = None,
                 names: Union[None, PathLike, Sequence[str]] = None, threads: Optional[int] = None,
                 device: str = "cpu", low_memory: bool = False):
        check_classifier_cfg(cfg)
        self.data = read_data_cfg(data) if isinstance(data, (str, os.PathLike)) else data
        self.network = Network(cfg, weights, batch=1, fuse=True, threads=threads, device=device,
                               low_memory=low_memory)
        try:
            check_network(self.network, None if self.data is None else self.data.classes)
            self.classes: int = self.network.outputs if self.data is None else self.data.classes
            if names is None and self.data is not None:
                names = self.data.resolve(self.data.names_or_labels)
            self.names: Optional[list[str]] = _read_names(names)
        except BaseException:
            self.network.close()
            raise
        if self.names is not None and len(self.names) < self.classes:
            log.warning("%d class names for %d classes: the others print as their index",
                        len(self.names), self.classes)

    @property
    def top(self) -> int:
        """darknet's default k: the .data ``top``, else 1, clamped to ``classes``."""
        t = self.data.top if self.data is not None and self.data.top else 1
        return min(t, self.classes)

    @property
    def width(self) -> int:
        return self.network.width

    @property
    def height(self) -> int:
        return self.network.height

    def preprocess(self, image: Any, channel_order: str = "bgr") -> np.ndarray:
        """One image -> float32 RGB (C, height, width), as the network sees it."""
        return _prepare(image, self.network, channel_order)

    def predict(self, images: Any, top: Optional[int] = 5, *, channel_order: str = "bgr"
                ) -> Union[Classification, list[Classification]]:
        """Classify one image (-> :class:`Classification`) or a batch (-> a list).

        *top* = k (None: :attr:`top`), clamped to ``classes``; the ranking
        covers all network outputs, as upstream's predict does.
        """
        k = self.top if top is None else min(int(top), self.classes)
        return _classify(self.network, images, k, self.names, channel_order)

    __call__ = predict


    def __repr__(self) -> str:
        return (f"<darknetpy.Classifier {self.network.cfg_path!r} classes={self.classes} "
                f"input={self.width}x{self.height}>")


def classify(model: Union[Network, Classifier], image: Any, top: int = 5,
             names: Optional[Sequence[str]] = None, channel_order: str = "bgr"
             ) -> Union[Classification, list[Classification]]:
    """The top-*top* classes of an image (-> :class:`Classification`, which iterates as
    ``(name, prob)`` pairs), or a list of them for a batch: ``Classifier.predict`` for a model.

    *model* is a :class:`Classifier` or a :class:`~darknetpy.Network` (built
    with ``fuse=True`` to match darknet's predict).  *names* default to the
    classifier's names, else the class index as text.  Preprocessing is
    darknet's (module docstring); *channel_order* applies to uint8 arrays.
    """
    if isinstance(model, Classifier):
        net, classes = model.network, model.classes
        names = model.names if names is None else names
    else:
        check_network(model, None)
        net, classes = model, model.outputs
    return _classify(net, image, min(int(top), classes), names, channel_order)
