"""darknet ``.data`` files, list files and the label-substring rule.

A darknet classifier finds the class of an image by searching its *whole path*
for each label string (spec §5.5, §6.4).  This module reproduces that rule
exactly and checks a dataset against it before training or validation, so the
classic pitfalls (a label inside a directory name, an empty label line, a label
that is part of another label) are reported instead of silently costing
accuracy.

All paths are taken as ``str`` or ``os.PathLike``; list and label files are
decoded as UTF-8 with ``surrogateescape``, so arbitrary bytes round-trip.
"""
from __future__ import annotations

import errno
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from .cfgfile import read_options
from .errors import CfgError, LabelError

__all__ = [
    "DataConfig",
    "LabelCheck",
    "LabelError",
    "check_labelled",
    "match_labels",
    "read_data_cfg",
    "read_lines",
    "read_list",
    "truth_index",
    "truth_vector",
]

log = logging.getLogger("darknetpy")

PathArg = Union[str, os.PathLike]
_LEADING_INT = re.compile(r"[+-]?\d+")
_EXAMPLES = 5


# --------------------------------------------------------------------------- files


def _read_text(path: PathArg, what: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            return f.read()
    except FileNotFoundError:
        raise FileNotFoundError(errno.ENOENT, f"{what} not found", os.fspath(path)) from None


def _split_lines(text: str) -> list[str]:
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def read_lines(path: PathArg) -> list[str]:
    """Return the lines of a text file verbatim (spec §6.2).

    Only a trailing LF or CR LF is removed; other whitespace is kept and a lone
    CR does not end a line, as in darknet's ``fgetl``.  Raises
    ``FileNotFoundError`` naming *path*.
    """
    return _split_lines(_read_text(path, "file"))


def read_list(path: PathArg) -> list[str]:
    """Return the image paths of a darknet list file, skipping empty lines."""
    return [line for line in _split_lines(_read_text(path, "list file")) if line]


# --------------------------------------------------------------------------- .data


@dataclass(frozen=True)
class DataConfig:
    """A darknet ``.data`` file (spec §6.1), with darknet's classifier defaults.

    Paths are kept as written; use :meth:`resolve` to open them.  ``names`` is
    None when absent (darknet then prints the ``labels``, see
    :attr:`names_or_labels`); ``top`` is None when absent because darknet's
    default depends on the command (1 for predict/valid, 5 for train).
    ``options`` holds every ``key=value`` line in file order (value None for a
    line without ``=``), for keys this class does not model (``map``,
    ``results``, ``eval``, ...); read them with :meth:`get`.
    """

    path: Path
    classes: int = 2
    train: str = "data/train.list"
    valid: str = "data/train.list"
    test: str = "data/test.list"
    labels: str = "data/labels.list"
    names: str | None = None
    backup: str = "/backup/"
    top: int | None = None
    options: tuple[tuple[str, str | None], ...] = ()

    @property
    def names_or_labels(self) -> str:
        """The file darknet prints class names from: ``names``, else ``labels``."""
        return self.labels if self.names is None else self.names

    def get(self, key: str, default: str | None = None) -> str | None:
        """Value of the first *key* line (darknet's lookup), else *default*."""
        for k, v in self.options:
            if k == key:
                return default if v is None else v
        return default

    def resolve(self, p: PathArg) -> Path:
        """Turn a path from this file into one that can be opened.

        Absolute paths are returned unchanged.  A relative path is tried first
        against the current directory (where darknet looks) and, if no such file
        exists there, against the directory of the ``.data`` file.  When neither
        exists the current-directory path is returned, so the eventual
        ``FileNotFoundError`` names what darknet would have opened.
        """
        path = Path(p)
        if path.is_absolute() or path.exists():
            return path
        beside = self.path.parent / path
        return beside if beside.exists() else path


def _parse_options(path: PathArg) -> list[tuple[str, str | None, int]]:
    """(key, value, line number) per option line, lexed by the engine's cfg reader (spec §1.1).
    A key without ``=`` has no value (None) but still shadows later lines."""
    if not os.path.isfile(path):
        _read_text(path, ".data file")  # the FileNotFoundError users expect, naming the file
    return [(key, value if value else None, number) for key, value, number in read_options(path)]


def _parse_int(path: PathArg, number: int, key: str, value: str) -> int:
    match = _LEADING_INT.match(value)
    if match is None:
        raise CfgError(f"{path}:{number}: {key}={value} is not an integer")
    if match.end() != len(value):
        log.warning("%s:%d: %s=%s read as %s, as darknet's atoi does", path, number, key, value,
                    match.group())
    return int(match.group())


def read_data_cfg(path: PathArg) -> DataConfig:
    """Read a darknet ``.data`` file (spec §6.1) with the cfg lexer (spec §1.1).

    Every space, tab and CR is deleted from each line, lines starting with
    ``#`` or ``;`` are comments, the first ``=`` splits key from value and the
    first occurrence of a key wins.  Raises ``FileNotFoundError`` for a missing
    file and ``CfgError`` for an integer key without a leading number or a
    ``classes`` below 1.
    """
    first: dict[str, tuple[str | None, int]] = {}
    options = _parse_options(path)
    for key, value, number in options:
        first.setdefault(key, (value, number))

    def text(key: str) -> str | None:
        return first.get(key, (None, 0))[0]

    def integer(key: str) -> int | None:
        value, number = first.get(key, (None, 0))
        return None if value is None else _parse_int(path, number, key, value)

    given: dict[str, Any] = {k: text(k) for k in ("train", "valid", "test", "labels", "names",
                                                  "backup") if text(k) is not None}
    classes = integer("classes")
    if classes is not None:
        if classes < 1:
            raise CfgError(f"{path}: classes={classes}; a classifier needs classes >= 1")
        given["classes"] = classes
    return DataConfig(Path(path), top=integer("top"),
                      options=tuple((k, v) for k, v, _ in options), **given)


# --------------------------------------------------------------------------- labels


def match_labels(path: PathArg, labels: Sequence[str]) -> list[int]:
    """Indices j, ascending, of every ``labels[j]`` that is a substring of *path*.

    This is darknet's ``strstr`` rule (spec §5.5): the whole path counts,
    directories included, and an empty label matches every path.  Pass only the
    first ``classes`` labels, as darknet uses only those.
    """
    s = os.fspath(path)
    return [j for j, label in enumerate(labels) if label in s]


def truth_index(path: PathArg, labels: Sequence[str]) -> int:
    """darknet's validation truth: the first matching label index, else -1 (spec §6.4)."""
    s = os.fspath(path)
    return next((j for j, label in enumerate(labels) if label in s), -1)


def truth_vector(path: PathArg, labels: Sequence[str], classes: int,
                 smooth_eps: float = 0.0) -> np.ndarray:
    """darknet's training truth for one image (``fill_truth_smooth``, spec §5.5).

    Returns float32 of shape ``(classes,)``: ``1 - smooth_eps`` for every
    matching label among the first *classes* labels and
    ``smooth_eps / (classes - 1)`` elsewhere, computed in float32 as darknet
    does.  With no match there is no positive entry, with several matches there
    are several.  For ``classes == 1`` the off value is 0.
    """
    if classes < 1:
        raise ValueError(f"classes must be >= 1, got {classes}")
    eps = np.float32(smooth_eps)
    off = eps / np.float32(classes - 1) if classes > 1 else np.float32(0)
    truth = np.full(classes, off, dtype=np.float32)
    truth[match_labels(path, labels[:classes])] = np.float32(1) - eps
    return truth


class _Matcher:
    """All labels contained in a string, by hashing its substrings per label length.

    Costs O(len(s) x distinct label lengths) per string instead of one scan per
    label, and the directory part of a path is matched once per directory, which
    makes checking ImageNet-sized lists against 1000 WNIDs take seconds.  A label
    that matches across the last "/" must contain "/"; those few labels are
    searched in the whole path.
    """

    def __init__(self, labels: Sequence[str]) -> None:
        self._by_length: dict[int, dict[str, list[int]]] = {}
        for j, label in enumerate(labels):
            self._by_length.setdefault(len(label), {}).setdefault(label, []).append(j)
        self._slashed = [(j, label) for j, label in enumerate(labels) if "/" in label]
        self._directories: dict[str, set[int]] = {}

    def _substrings(self, s: str) -> set[int]:
        return {j for length, table in self._by_length.items()
                for start in range(len(s) - length + 1)
                for j in table.get(s[start:start + length], ())}

    def __call__(self, path: str) -> list[int]:
        cut = path.rfind("/") + 1
        directory = path[:cut]
        if directory not in self._directories:
            self._directories[directory] = self._substrings(directory)
        found = self._directories[directory] | self._substrings(path[cut:])
        found.update(j for j, label in self._slashed if label in path)
        return sorted(found)


@dataclass(frozen=True)
class LabelCheck:
    """How a list of image paths fares under darknet's label rule.

    ``unlabelled``, ``labelled`` and ``ambiguous`` count the paths matching 0, 1
    and 2+ labels; the ``*_examples`` hold up to five of each (ambiguous ones
    with the matching labels).  ``hints`` explain likely causes and fixes.
    """

    total: int
    labelled: int
    unlabelled: int
    ambiguous: int
    unlabelled_examples: tuple[str, ...]
    ambiguous_examples: tuple[tuple[str, tuple[str, ...]], ...]
    hints: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every path matches exactly one label."""
        return self.unlabelled == 0 and self.ambiguous == 0

    def __str__(self) -> str:
        if self.ok:
            return f"all {self.total} image paths match exactly one label"
        lines = [f"{self.total - self.labelled} of {self.total} image paths do not match exactly "
                 "one label (darknet searches the whole path for every label, spec §5.5):"]
        if self.unlabelled:
            lines.append(f"  {self.unlabelled} match no label, e.g.")
            lines += [f"    {p}" for p in self.unlabelled_examples]
        if self.ambiguous:
            lines.append(f"  {self.ambiguous} match 2 or more labels, e.g.")
            lines += [f"    {p}  matches {', '.join(map(repr, found))}"
                      for p, found in self.ambiguous_examples]
        lines += [f"Hint: {hint}" for hint in self.hints]
        return "\n".join(lines)


def _shared_directory(paths: Sequence[str]) -> str:
    """The longest directory prefix (ending in a separator) common to all paths."""
    prefix = os.path.commonprefix(list(paths)) if paths else ""
    cut = max(prefix.rfind("/"), prefix.rfind(os.sep))
    return prefix[:cut + 1]


def _directory_hints(examples: Iterable[tuple[str, tuple[str, ...]]], labels: Sequence[str],
                     shared: str, total: int) -> list[str]:
    """Explain ambiguous matches: empty labels, labels inside labels or directory names."""
    hints: dict[str, None] = {}  # ordered and without duplicates
    shared_names = set(re.split(r"[/\\]", shared))
    for path, found in examples:
        for label in found:
            if not label:
                hints[f"label line {labels.index('') + 1} is empty and matches every path; "
                      "delete empty lines from the labels file"] = None
                continue
            hints.update((f"the label {label!r} is part of the label {other!r}, so paths with "
                          "the second also match the first; rename one of them", None)
                         for other in found if other != label and label in other)
            for name in re.split(r"[/\\]", path)[:-1]:
                if label not in name or name in found:
                    continue
                if name in shared_names:
                    where = (f"of {shared!r}, which all {total} paths share, "
                             "so every image matches it")
                else:
                    where = f"(e.g. {path!r}), so the images below it match it too"
                hints[f"the label {label!r} also occurs in the directory name {name!r} {where}; "
                      "move or rename the images, or pass allow_ambiguous=True to keep "
                      "darknet's behaviour"] = None
    return list(hints)


def check_labelled(paths: Iterable[PathArg], labels: Sequence[str], *,
                   allow_ambiguous: bool = False) -> LabelCheck:
    """Check that every path contains exactly one of *labels* (spec §5.5, §6.4).

    Pass only the first ``classes`` labels.  Paths matching no label get truth
    -1 in ``classifier valid`` (never correct) and an all-off truth vector in
    training; paths matching several labels get several positives in training
    and the first match in valid.  Raises :class:`LabelError`, whose message
    gives counts, examples and the probable fix, if any path matches 0 or 2+
    labels, unless *allow_ambiguous* is true (darknet's behaviour); the
    returned :class:`LabelCheck` always has the counts.
    """
    strings = [os.fspath(p) for p in paths]
    matcher = _Matcher(labels)
    counts = [0, 0, 0]
    unlabelled: list[str] = []
    ambiguous: list[tuple[str, tuple[str, ...]]] = []
    for s in strings:
        indices = matcher(s)
        counts[min(len(indices), 2)] += 1
        if not indices and len(unlabelled) < _EXAMPLES:
            unlabelled.append(s)
        elif len(indices) > 1 and len(ambiguous) < _EXAMPLES:
            ambiguous.append((s, tuple(labels[j] for j in indices)))
    hints = _directory_hints(ambiguous, labels, _shared_directory(strings), len(strings))
    if counts[0]:
        hints.append("put every image below a directory named after its label (e.g. "
                     "train/<label>/x.jpg) or put the label in the file name")
    check = LabelCheck(len(strings), counts[1], counts[0], counts[2], tuple(unlabelled),
                       tuple(ambiguous), tuple(hints))
    if not check.ok and not allow_ambiguous:
        raise LabelError(str(check), check)
    return check
