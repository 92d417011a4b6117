"""darknet's key=value files (.cfg and .data), read by the engine's own lexer so
Python and C never disagree on what a file says (spec §1.1)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Optional, Union

from . import _libdarknet

__all__ = ["Section", "read_cfg", "read_options"]


@dataclass(frozen=True)
class Section:
    """One ``[type]`` section: its line and its options in file order."""
    type: str                 # "[net]", "[convolutional]", ... ("" for a .data file's options)
    line: int
    options: tuple            # ((key, value, line), ...)

    @property
    def name(self) -> str:
        """The section name without brackets, lower case ("convolutional")."""
        return self.type.strip("[]").lower()

    def get(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The first value of ``key`` (darknet reads the first occurrence), else ``default``."""
        for k, value, _ in self.options:
            if k == key:
                return value
        return default


def read_cfg(path: Union[str, os.PathLike]) -> list:
    """The sections of a ``.cfg`` file. Raises CfgError naming file:line for text
    that is not key=value, FileNotFoundError for a missing file."""
    return [Section(t, line, tuple(opts)) for t, line, opts in _libdarknet.cfg_sections(path, True)]


def read_options(path: Union[str, os.PathLike]) -> list:
    """The ``(key, value, line)`` options of a ``.data`` file, in file order. As upstream:
    a line without ``=`` is a key with an empty value, a line with an empty value is
    dropped (with a warning)."""
    sections = _libdarknet.cfg_sections(path, False)
    return [option for _, _, options in sections for option in options]
