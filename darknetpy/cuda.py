"""CUDA devices: whether darknetpy can run networks on a GPU, and on which.

``Network(cfg, weights, device="cuda")`` (or ``"cuda:N"``) runs inference on a GPU. This
needs a darknetpy built where nvcc was installed, an NVIDIA driver and GPU, and cuBLAS
(``pip install "darknetpy-engine[cuda]"``). Without them a CUDA network raises
:class:`~darknetpy.DeviceError` saying which is missing; nothing falls back to the CPU.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import re
from typing import Optional

from . import _libdarknet

__all__ = ["is_available", "unavailable_reason", "device_count", "memory_info"]

_LIBRARIES = ("libcublasLt.so.13", "libcublas.so.13")
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


def parse_device(device: str) -> str:
    """The canonical form of a device string ("cpu", "cuda:N"); ValueError for others."""
    if not isinstance(device, str) or not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise ValueError(f"device must be \"cpu\", \"cuda\" or \"cuda:N\", not {device!r}")
    return "cuda:0" if device == "cuda" else device


def load_libraries() -> None:
    """Load cuBLAS from the nvidia-cublas wheel wherever it is installed, so the engine finds
    it by name (its rpath covers only a wheel beside darknetpy in the same site directory)."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    spec = importlib.util.find_spec("nvidia")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        lib = os.path.join(folder, "cu13", "lib")
        if all(os.path.exists(os.path.join(lib, name)) for name in _LIBRARIES):
            for name in _LIBRARIES:
                ctypes.CDLL(os.path.join(lib, name), mode=ctypes.RTLD_GLOBAL)
            return
