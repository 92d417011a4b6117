"""darknetpy: darknet-compatible neural networks from Python on a fast C engine."""
import logging
import os

# libgomp reads this when the extension loads it. Idle OpenMP workers that spin
# (the default) starve every other thread on a busy machine; a sleeping worker
# costs a few microseconds per parallel region instead. Users can override it.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from .errors import (CfgError, DarknetError, DeviceError, InputError, OutOfMemoryError, UnsupportedError,
                     WeightsError)
from .classifier import (Classification, Classifier, ValidationResult, classify, top_k,
                         validate_classifier)
from .image import center_crop, crop_image, letterbox_image, load_image, resize_image, resize_min, to_chw
from .detector import Detection, Detections, Detector
from .detector_eval import MapResult, evaluate_detector, validate_detector
from .anchors import AnchorsResult, calc_anchors
from .network import LayerInfo, Network, partial
from .train import TrainResult, train_classifier

__version__ = "0.1.0"

logging.getLogger("darknetpy").addHandler(logging.NullHandler())

__all__ = ["Network", "LayerInfo", "partial", "load_image", "resize_image", "resize_min", "crop_image",
           "center_crop", "to_chw", "DarknetError", "CfgError", "WeightsError", "InputError",
           "UnsupportedError", "DeviceError", "OutOfMemoryError", "train_classifier", "TrainResult",
           "Classifier", "Classification", "ValidationResult", "classify", "validate_classifier", "top_k",
           "Detector", "Detections", "Detection", "evaluate_detector", "validate_detector", "MapResult",
           "calc_anchors", "AnchorsResult", "letterbox_image", "__version__"]
