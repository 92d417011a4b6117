"""darknetpy: darknet-compatible neural networks from Python on a fast C engine."""
import logging
from typing import TYPE_CHECKING


def _load_openblas():
    """Load libscipy_openblas.so, which the extension links to, wherever that wheel is installed. The
    extension's rpath ($ORIGIN/../scipy_openblas32/lib) misses it when the two packages sit in
    different site directories, in an in-place build, or after an auditwheel that drops entries
    leaving the wheel. The library alone: the wheel's module imports email, socket and
    importlib.metadata (2.4 MB of a process's memory) to tell its version."""
    import ctypes
    import importlib.util
    import os

    spec = importlib.util.find_spec("scipy_openblas32")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("darknetpy needs the scipy-openblas32 package: pip install scipy-openblas32")
    lib_dir = os.path.join(spec.submodule_search_locations[0], "lib")
    names = sorted(n for n in os.listdir(lib_dir) if n.startswith("libscipy_openblas"))
    if not names:
        raise ImportError(f"no libscipy_openblas library in {lib_dir}: reinstall scipy-openblas32")
    ctypes.CDLL(os.path.join(lib_dir, names[0]), mode=ctypes.RTLD_GLOBAL)


_load_openblas()

# OpenMP workers keep libgomp's own wait policy: they spin a few milliseconds after each
# parallel region (a forward runs hundreds of regions back to back, and waking a sleeping
# worker cost 30-60 us per region here: yolov4-tiny ran 1.4x slower with OMP_WAIT_POLICY=PASSIVE),
# then sleep; libgomp spins less by itself when its threads outnumber the CPUs.
from . import _libdarknet  # noqa: E402

from .errors import (CfgError, DarknetError, DeviceError, IncompleteError, InputError, LabelError,
                     LossNotFiniteError, OutOfMemoryError, UnsupportedError, WeightsError)
from .results import Classification, ValidationResult, ValidationStep, top_k
from .classifier import Classifier, classify
from .image import center_crop, crop_image, letterbox_image, load_image, resize_image, resize_min, to_chw
from .detector import Detection, Detections, Detector
from .network import LayerInfo, Network, partial
from . import cuda
from ._version import __version__

if TYPE_CHECKING:
    from .anchors import AnchorsResult, calc_anchors
    from .detector_eval import MapResult, evaluate_detector, validate_detector
    from .memory import check_training_memory, estimate_training_memory
    from .parallel import DataParallel
    from .train import TrainResult, train_classifier
    from .detector_train import DetectorTrainResult, train_detector
    from .validation import validate_classifier


def __getattr__(name: str):
    """Training, validation and their helpers load at first use: a process that only runs networks
    does not hold their modules (0.7 MB)."""
    import importlib

    module = {"validate_classifier": "validation", "MapResult": "detector_eval", "evaluate_detector": "detector_eval",
              "validate_detector": "detector_eval", "AnchorsResult": "anchors", "calc_anchors": "anchors",
              "check_training_memory": "memory", "estimate_training_memory": "memory", "TrainResult": "train",
              "train_classifier": "train", "DetectorTrainResult": "detector_train",
              "train_detector": "detector_train", "DataParallel": "parallel"}.get(name)
    if module is None:
        raise AttributeError(f"module 'darknetpy' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


logging.getLogger("darknetpy").addHandler(logging.NullHandler())
del logging, TYPE_CHECKING, _load_openblas   # the namespace holds the public API and submodules only

__all__ = ["Network", "LayerInfo", "partial", "load_image", "resize_image", "resize_min", "crop_image",
           "center_crop", "to_chw", "DarknetError", "CfgError", "WeightsError", "InputError",
           "UnsupportedError", "DeviceError", "OutOfMemoryError", "LabelError", "IncompleteError",
           "train_classifier", "TrainResult", "train_detector", "DetectorTrainResult", "LossNotFiniteError",
           "Classifier", "Classification", "ValidationResult",
           "ValidationStep", "classify", "validate_classifier", "top_k", "Detector", "Detections", "Detection",
           "evaluate_detector", "validate_detector", "MapResult", "calc_anchors", "AnchorsResult", "letterbox_image",
           "estimate_training_memory", "check_training_memory", "cuda", "DataParallel", "__version__"]
