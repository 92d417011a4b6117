"""CUDA devices: whether darknetpy can run networks on a GPU, and on which.

``Network(cfg, weights, device="cuda")`` (or ``"cuda:N"``) runs inference and training on a
GPU. This needs a darknetpy built where nvcc was installed, an NVIDIA driver and GPU, and
cuBLAS (``pip install "darknetpy-engine[cuda]"``, which brings cuDNN too; without cuDNN
convolutions run as im2col + cuBLAS). Without them a CUDA network raises
:class:`~darknetpy.DeviceError` saying which is missing; nothing falls back to the CPU.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import re
from typing import Optional

from . import _libdarknet

__all__ = ["is_available", "unavailable_reason", "device_count", "memory_info", "libraries"]

# folder under the nvidia package -> libraries the engine opens from it (cuDNN is optional)
_LIBRARIES = {os.path.join("cu13", "lib"): ("libcublasLt.so.13", "libcublas.so.13"),
              os.path.join("cudnn", "lib"): ("libcudnn.so.9",),
              os.path.join("nccl", "lib"): ("libnccl.so.2",)}
_loaded = False


def unavailable_reason() -> Optional[str]:
    """Why no CUDA device can be used (no CUDA build, no driver, no GPU), or None when one can."""
    count, reason = _libdarknet.cuda_device_count()
    if reason is None and count == 0:
        return "the NVIDIA driver found no CUDA GPU"
    return reason


def is_available() -> bool:
    """Whether at least one CUDA device can run networks (:func:`unavailable_reason` says why not)."""
    return unavailable_reason() is None


def device_count() -> int:
    """Number of CUDA devices (0 without a CUDA build, a driver or a GPU)."""
    return _libdarknet.cuda_device_count()[0]


def memory_info(device: int = 0) -> tuple:
    """(free, total) bytes of memory of CUDA device ``device``; DeviceError when there is none."""
    return _libdarknet.cuda_memory_info(int(device))


def libraries() -> dict:
    """Whether the GPU libraries load (no GPU is needed to tell): ``{"cublas": None or why not,
    "cudnn": ..., "nccl": ...}``. Without cuDNN convolutions run as im2col + cuBLAS
    (``DARKNETPY_CUDNN=0`` chooses that too); NCCL is needed only to train on several GPUs."""
    load_libraries()
    return {name: _libdarknet.cuda_library_error(name) for name in ("cublas", "cudnn", "nccl")}


def parse_device(device: str) -> str:
    """The canonical form of a device string ("cpu", "cuda:N"); ValueError for others."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"device must be \"cpu\", \"cuda\" or \"cuda:N\", not {device!r}")
    return "cuda:0" if device == "cuda" else device


def load_libraries() -> None:
    """Load cuBLAS, cuDNN and NCCL from the nvidia-cublas, nvidia-cudnn-cu13 and nvidia-nccl-cu13
    wheels wherever they are installed, so the engine finds them by name (its rpath covers only wheels beside darknetpy in
    the same site directory)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    spec = importlib.util.find_spec("nvidia")
    folders = (spec.submodule_search_locations or []) if spec else []
    for sub, names in _LIBRARIES.items():
        for folder in folders:
            lib = os.path.join(folder, sub)
            if all(os.path.exists(os.path.join(lib, name)) for name in names):
                for name in names:
                    ctypes.CDLL(os.path.join(lib, name), mode=ctypes.RTLD_GLOBAL)
                break
