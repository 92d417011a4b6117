"""Result types of classification and validation, and darknet's output formatting.

``str()`` of each result is darknet's console text (spec §6.3-§6.5): C's ``%f``
spelling of floats and darknet's ``top_k`` ranking are defined here once.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

import numpy as np

__all__ = ["Classification", "ValidationResult", "ValidationStep", "c_float", "top_k"]


def c_float(value: float) -> str:
    """C's ``%f`` of *value*, including glibc's ``-nan``/``nan``/``inf`` spellings."""
    v = float(value)
    if v != v:
        return "-nan" if np.signbit(value) else "nan"
    return f"{v:f}"


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """darknet's ``top_k`` (spec §6.3): indices of the k largest values, best first.

    Ties keep the lower index first; a NaN never displaces an entry already
    placed but fills an empty slot (all-NaN gives ``[0, 1, ..., k-1]``).
    *values* is 1-D; k is clamped to its length.  Returns int64 (k,).
    """
    x = np.asarray(values, dtype=np.float32).ravel()
    k = max(0, min(int(k), x.size))
    if not np.isnan(x).any():
        return np.argsort(-x, kind="stable")[:k].astype(np.int64)
    slots: list[int] = []
    for i, v in enumerate(x):
        for pos in range(k):
            if pos >= len(slots) or x[slots[pos]] < v:
                slots.insert(pos, i)
                del slots[k:]
                break
    return np.array(slots, dtype=np.int64)



@dataclass(frozen=True)
class Classification:
    """The top-k classes of one image, best first (darknet's ``top_k`` order).

    ``indices`` int64 (k,), ``probs`` float32 (k,) the network outputs there,
    ``names`` the k class names, ``output`` float32 (outputs,) the whole output
    vector, ``time_ms`` the forward time.  Iterating yields ``(name, prob)``;
    ``str()`` gives darknet's ``name: prob`` lines.
    """

    indices: np.ndarray
    probs: np.ndarray
    names: tuple[str, ...]
    output: np.ndarray
    time_ms: float
    path: Optional[str] = None

    def pairs(self) -> list[tuple[str, float]]:
        """``[(name, prob), ...]`` best first."""
        return [(n, float(p)) for n, p in zip(self.names, self.probs)]

    @property
    def top1(self) -> tuple[str, float]:
        return self.names[0], float(self.probs[0])

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return iter(self.pairs())

    def __getitem__(self, i: int) -> tuple[str, float]:
        return self.pairs()[i]

    def to_dict(self) -> dict:
        return {"path": self.path, "time_ms": self.time_ms,
                "top": [{"index": int(i), "name": n, "prob": float(p)}
                        for i, n, p in zip(self.indices, self.names, self.probs)]}

    def __str__(self) -> str:
        return "\n".join(f"{n}: {c_float(p)}" for n, p in zip(self.names, self.probs))

    def __repr__(self) -> str:
        name, prob = self.top1 if self.names else ("-", float("nan"))
        return f"Classification(top1={name!r} {prob:.4f}, k={len(self)})"



@dataclass(frozen=True)
class ValidationStep:
    """Progress of a validation after one image (or one chunk for ``crop``).

    ``top1``/``topk`` are the running accuracies; ``text`` is darknet's console
    line for this step (without line ends).
    """

    index: int
    top1: float
    topk: float
    k: int
    text: str


@dataclass(frozen=True)
class ValidationResult:
    """Accuracy of a classifier on a ``valid`` list (spec §6.4).

    ``top1``/``topk`` over ``count`` images (paths without a label count as
    wrong, as upstream); ``per_class`` float64 (classes,) top-1 accuracy per
    true class (NaN where a class has no image), ``class_counts`` int64
    (classes,); ``confusion`` int64 (classes, classes) rows = truth, columns =
    top-1 prediction (labelled images only) when requested, else None.
    ``str()`` is darknet's final console line.
    """

    top1: float
    topk: float
    k: int
    count: int
    mode: str
    per_class: np.ndarray
    class_counts: np.ndarray
    names: tuple[str, ...]
    unlabelled: int = 0
    unreadable: tuple[str, ...] = ()
    confusion: Optional[np.ndarray] = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict:
        return {"top1": self.top1, f"top{self.k}": self.topk, "k": self.k, "count": self.count,
                "mode": self.mode, "unlabelled": self.unlabelled, "unreadable": list(self.unreadable),
                "per_class": {n: (None if np.isnan(a) else float(a))
                              for n, a in zip(self.names, self.per_class)}}

    def __str__(self) -> str:
        return f"{self.count - 1}: top 1: {c_float(self.top1)}, top {self.k}: {c_float(self.topk)}"

    def __repr__(self) -> str:
        return f"ValidationResult(top1={self.top1:.6f}, top{self.k}={self.topk:.6f}, count={self.count})"

