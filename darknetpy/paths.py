"""Checks on paths given by the user, so that a bad one raises a typed error
that names the argument and the fix instead of failing deep in the engine."""
from __future__ import annotations

import errno
import os
import stat
from typing import Union

from .errors import InputError

PathLike = Union[str, bytes, os.PathLike]


def checked_path(path: PathLike, what: str) -> str:
    """``path`` as a str: not empty and without NUL bytes (C would cut it there)."""
    p = os.fsdecode(os.fspath(path))
    if p == "":
        raise FileNotFoundError(errno.ENOENT, f"the {what} path is empty; give the path of a {what} file", p)
    if "\0" in p:
        raise InputError(f"the {what} path {p!r} contains a NUL byte; remove it")
    return p


def existing_file(path: PathLike, what: str) -> str:
    """:func:`checked_path` of a file to read: it must exist and not be a directory."""
    p = checked_path(path, what)
    try:
        mode = os.stat(p).st_mode
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, f"{what} path {p} is a loop of symbolic links; fix the link", p) from None
        if os.path.islink(p):
            raise FileNotFoundError(errno.ENOENT, f"{what} path {p} is a symbolic link to the missing "
                                    f"{os.readlink(p)}; fix the link", p) from None
        if e.errno == errno.ENOENT:
            raise FileNotFoundError(errno.ENOENT, f"{what} file {p} not found (relative paths start at "
                                    f"{os.getcwd()})", p) from None
        raise
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, f"{what} path {p} is a directory; give the path of a {what} file", p)
    return p


def write_atomic(path: PathLike, data: bytes) -> None:
    """Write *data* to *path* through a temporary file beside it and a rename, so a reader
    (or a crash) never sees a half-written file."""
    p = checked_path(path, "output")
    tmp = os.path.join(os.path.dirname(p), f".{os.path.basename(p)}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, p)
