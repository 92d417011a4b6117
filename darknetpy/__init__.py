"""darknetpy: darknet-compatible neural networks from Python on a fast C engine."""
import logging

from .errors import (CfgError, DarknetError, DeviceError, InputError, OutOfMemoryError, UnsupportedError,
                     WeightsError)
from .image import center_crop, crop_image, load_image, resize_image, resize_min, to_chw
from .network import LayerInfo, Network, partial

__version__ = "0.1.0"

logging.getLogger("darknetpy").addHandler(logging.NullHandler())

__all__ = ["Network", "LayerInfo", "partial", "load_image", "resize_image", "resize_min", "crop_image",
           "center_crop", "to_chw", "DarknetError", "CfgError", "WeightsError", "InputError",
           "UnsupportedError", "DeviceError", "OutOfMemoryError", "__version__"]
