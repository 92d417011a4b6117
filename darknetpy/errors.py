"""Exceptions raised by darknetpy. Each also derives from the built-in class
that fits, so ``except ValueError`` keeps working."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .data import LabelCheck
    from .imagenet import PrepareReport

__all__ = ["DarknetError", "CfgError", "WeightsError", "InputError", "UnsupportedError", "DeviceError",
           "OutOfMemoryError", "LabelError", "IncompleteError", "NoImagesError", "LossNotFiniteError"]


class DarknetError(Exception):
    """Base of every darknetpy error."""


class CfgError(DarknetError, ValueError):
    """A .cfg or .data file is malformed or asks for something unsupported.
    The message names the file, line, section and layer, and the fix."""


class WeightsError(DarknetError, ValueError):
    """A .weights file is malformed or does not fit the network."""


class InputError(DarknetError, ValueError):
    """An image or tensor of the wrong shape, dtype or channel count."""


class UnsupportedError(DarknetError, ValueError):
    """A valid request this build cannot serve."""


class DeviceError(DarknetError, RuntimeError):
    """CUDA is unavailable or failed."""


class OutOfMemoryError(DeviceError, MemoryError):
    """An allocation failed; lower batch (or raise subdivisions) or the input size."""


class LabelError(DarknetError, ValueError):
    """Image paths that do not contain exactly one label (spec §5.5).

    ``check`` holds the full :class:`~darknetpy.data.LabelCheck`; the message explains the fix.
    """

    def __init__(self, message: str, check: LabelCheck) -> None:
        super().__init__(message)
        self.check = check


class IncompleteError(DarknetError):
    """``imagenet.prepare(strict=True)`` found missing images; ``report`` says which."""

    def __init__(self, message: str, report: PrepareReport) -> None:
        super().__init__(message)
        self.report = report


class NoImagesError(DarknetError, FileNotFoundError):
    """``imagenet.prepare`` found no image; the message lists where it looked."""


class LossNotFiniteError(DarknetError, FloatingPointError):
    """Training stopped at a nan or inf loss, or at weights that became nan/inf (``nan_ok=False``).
    ``iteration`` is the iteration that went bad; ``layer`` the index of the first detection head
    whose cost did (None when no head's last mini-batch shows it), or of the first layer whose
    weights did; ``weights`` the newest good weights file (None if none was written); the message
    lists the likely causes."""

    def __init__(self, message: str, iteration: int, layer: Optional[int], weights: Optional[Path]) -> None:
        super().__init__(message)
        self.iteration = iteration
        self.layer = layer
        self.weights = weights
