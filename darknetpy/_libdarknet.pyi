"""Type stub of the Cython extension (src_ext/_libdarknet.pyx): thin handles over libdarknet.
Engine failures raise darknetpy.errors types (CfgError, WeightsError, InputError, OutOfMemoryError,
UnsupportedError, DarknetError), FileNotFoundError, OSError or KeyboardInterrupt (cancelled)."""
from typing import Any, Optional, TypedDict, Union

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float32]


class NetInfo(TypedDict):
    """The [net] values as parsed (dn_net_info)."""
    width: int
    height: int
    channels: int
    inputs: int
    batch: int
    cfg_batch: int
    subdivisions: int
    max_batches: int
    learning_rate: float
    momentum: float
    decay: float
    burn_in: int
    power: float
    angle: float
    aspect: float
    saturation: float
    exposure: float
    hue: float
    min_crop: int
    max_crop: int
    flip: int
    label_smooth_eps: float
    seen: int
    cur_iteration: int
    train: int
    fused: int
    n_layers: int
    output_layer: int
    outputs: int
    truths: int


class LayerInfoDict(TypedDict):
    """One row of darknet's layer table (the fields of darknetpy.LayerInfo)."""
    index: int
    type: str
    kind: int
    caps: frozenset[str]
    input_layers: tuple[int, ...]
    input_shape: tuple[int, int, int]
    inputs: int
    output_shape: tuple[int, int, int]
    outputs: int
    batch_normalize: bool
    n_weights: int
    bflops: float
    summary: str


class MemoryDict(TypedDict):
    """Bytes a network holds (dn_memory)."""
    weights: int
    activations: int
    workspace: int


CAPS: dict[str, int]


def resize_image(src: Floats, w: int, h: int) -> Floats: ...
def hsv_jitter(rgb: Floats, dhue: float, dsat: float, dexp: float) -> None: ...
AUGMENT_DRAWS: int
def augment_classifier(bgr: np.ndarray, settings: tuple, u: np.ndarray, out: Floats) -> None: ...
def resize_image_window(src: Floats, w: int, h: int, x0: int, y0: int, cw: int, ch: int) -> Floats: ...
class DetectorInfo(TypedDict):
    """The detection heads of a network (dn_detector_info)."""
    layer: int
    classes: int
    nms_kind: int
    beta_nms: float


Detections = tuple[Floats, Floats, Floats]  # bbox (n, 4) centre form, objectness (n,), prob (n, classes)


def nms(bbox: Floats, objectness: Floats, prob: Floats, thresh: float, kind: int, beta: float) -> Detections: ...
def cfg_sections(path: str, sections: bool) -> list[tuple[str, int, list[tuple[str, str, int]]]]: ...
def cuda_device_count() -> tuple[int, Optional[str]]: ...
def cuda_library_error(name: str) -> Optional[str]: ...
def train_step_parallel(handles: list, x: Floats, y: Floats) -> float: ...
def cuda_memory_info(ordinal: int) -> tuple[int, int]: ...
def estimate_training_memory(cfg_path: str, batch: int, subdivisions: int, width: int,
                             height: int) -> dict[str, int]: ...
def check_training_fits(cfg_path: str, limit: int) -> None: ...


class NetworkHandle:
    """Owns one dn_network; not thread-safe. Methods raise ValueError after close()."""

    def __init__(self, cfg_path: str, batch: int, max_memory: int = 0, device: str = "cpu",
                 keep_outputs: bool = False) -> None: ...
    def close(self) -> None: ...
    def info(self) -> NetInfo: ...
    def layer_info(self, index: int) -> LayerInfoDict: ...
    def layer_attrs(self, index: int) -> dict[str, Union[int, float, str, tuple]]: ...
    def load_weights(self, path: str, cutoff: int, strict: bool = False) -> int: ...
    def save_weights(self, path: str, cutoff: int) -> None: ...
    def set_counters(self, seen: int, cur_iteration: int) -> None: ...
    def prepare(self) -> None: ...
    def backend(self) -> str: ...
    def set_threads(self, threads: int) -> None: ...
    def keep_output(self, index: int) -> None: ...
    def resize(self, width: int, height: int) -> None: ...
    def memory(self) -> MemoryDict: ...
    def seed(self, seed: int) -> None: ...
    def forward(self, x: Floats) -> None: ...
    def layer_output(self, index: int) -> Floats: ...
    def layer_delta(self, index: int) -> Floats: ...
    def detection_stats(self, index: int) -> dict[str, Any]: ...
    def train_step(self, x: Floats, y: Floats) -> float: ...
    def phase_times(self) -> tuple[float, float, float]: ...
    def backward(self, x: Floats, y: Floats, want_input_delta: bool) -> tuple[float, Optional[Floats]]: ...
    def param(self, index: int, name: str) -> tuple[Floats, Optional[Floats]]: ...
    def set_param(self, index: int, name: str, values: Floats) -> None: ...
    def detector_info(self) -> DetectorInfo: ...
    def boxes(self, b: int, img_w: int, img_h: int, thresh: float, hier: float, letter: bool, relative: bool,
              nms: float, kind: int, beta: float) -> Detections: ...
    def current_rate(self) -> float: ...
