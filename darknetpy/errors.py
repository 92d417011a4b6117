"""Exceptions raised by darknetpy. Each also derives from the built-in class
that fits, so ``except ValueError`` keeps working."""

__all__ = ["DarknetError", "CfgError", "WeightsError", "InputError", "UnsupportedError", "DeviceError",
           "OutOfMemoryError"]


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
