"""The training chart (upstream's ``chart.png``): the average loss per iteration and the mAP
evaluations, drawn with OpenCV and rewritten atomically so a viewer never reads half a file."""
from __future__ import annotations

import math
import os
from typing import Optional, Sequence, Union

import numpy as np

from .paths import write_atomic

__all__ = ["draw_chart", "write_chart"]

PathLike = Union[str, os.PathLike]
WIDTH, HEIGHT = 1000, 700
LEFT, RIGHT, TOP, BOTTOM = 70, 70, 50, 60
LOSS_BGR, MAP_BGR, GRID_BGR, TEXT_BGR = (200, 80, 0), (0, 0, 220), (225, 225, 225), (40, 40, 40)


def _nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 5 x 10^k at or above v (a round top for the loss axis)."""
    if not math.isfinite(v) or v <= 0:
        return 1.0
    k = 10 ** math.floor(math.log10(v))
    return next(m * k for m in (1, 2, 5, 10) if m * k >= v)


def draw_chart(iterations: Sequence[int], avg_loss: Sequence[float], max_batches: int,
               maps: Sequence[tuple] = (), max_loss: Optional[float] = None) -> np.ndarray:
    """The chart as a uint8 BGR (700, 1000, 3) image: avg loss (blue, left axis, 0..max_loss,
    default a round value above the largest finite loss) over iterations 0..max_batches, and
    ``maps`` = (iteration, mAP in [0, 1]) points (red, right axis 0..100 %)."""
    import cv2   # imported when used: importing OpenCV changes the process environment

    font = cv2.FONT_HERSHEY_SIMPLEX
    img = np.full((HEIGHT, WIDTH, 3), 255, np.uint8)
    x0, x1, y0, y1 = LEFT, WIDTH - RIGHT, HEIGHT - BOTTOM, TOP
    loss = np.asarray(avg_loss, np.float64)
    its = np.asarray(iterations, np.float64)
    finite = np.isfinite(loss)
    top = max_loss or _nice_ceiling(float(loss[finite].max()) if finite.any() else 1.0)
    span = max(max_batches, int(its.max()) if len(its) else 1, 1)

    def px(it, value, scale):
        return (np.round(x0 + (x1 - x0) * np.asarray(it) / span).astype(np.int32),
                np.round(y0 - (y0 - y1) * np.clip(np.asarray(value) / scale, 0, 1)).astype(np.int32))

    for k in range(11):   # grid, loss labels left, mAP labels right, iteration labels below
        y = int(round(y0 - (y0 - y1) * k / 10))
        cv2.line(img, (x0, y), (x1, y), GRID_BGR, 1)
        cv2.putText(img, f"{top * k / 10:.3g}", (5, y + 4), font, 0.4, LOSS_BGR, 1, cv2.LINE_AA)
        cv2.putText(img, f"{k * 10}%", (x1 + 8, y + 4), font, 0.4, MAP_BGR, 1, cv2.LINE_AA)
        x = int(round(x0 + (x1 - x0) * k / 10))
        cv2.line(img, (x, y0), (x, y1), GRID_BGR, 1)
        cv2.putText(img, str(round(span * k / 10)), (x - 12, y0 + 18), font, 0.4, TEXT_BGR, 1, cv2.LINE_AA)
    cv2.rectangle(img, (x0, y1), (x1, y0), TEXT_BGR, 1)
    cv2.putText(img, "iteration", ((x0 + x1) // 2 - 30, HEIGHT - 15), font, 0.5, TEXT_BGR, 1, cv2.LINE_AA)
    if finite.any():
        xs, ys = px(its[finite], loss[finite], top)
        cv2.polylines(img, [np.stack([xs, ys], 1)], False, LOSS_BGR, 1, cv2.LINE_AA)
    if len(maps):
        m_it, m_val = (np.asarray(v, np.float64) for v in zip(*maps))
        xs, ys = px(m_it, m_val, 1.0)
        pts = np.stack([xs, ys], 1)
        cv2.polylines(img, [pts], False, MAP_BGR, 2, cv2.LINE_AA)
        for (x, y), v in zip(pts, m_val):
            cv2.circle(img, (int(x), int(y)), 4, MAP_BGR, -1, cv2.LINE_AA)
            cv2.putText(img, f"{v * 100:.1f}", (int(x) - 14, int(y) - 8), font, 0.4, MAP_BGR, 1, cv2.LINE_AA)
    title = "avg loss (blue)" + (", mAP@0.5 (red)" if len(maps) else "")
    if len(loss):
        title += f"   iteration {int(its[-1])}: avg loss {loss[-1]:.4f}"
    if len(maps):
        title += f", best mAP {max(m for _, m in maps) * 100:.2f} %"
    cv2.putText(img, title, (x0, 30), font, 0.55, TEXT_BGR, 1, cv2.LINE_AA)
    return img


def write_chart(path: PathLike, iterations: Sequence[int], avg_loss: Sequence[float], max_batches: int,
                maps: Sequence[tuple] = (), max_loss: Optional[float] = None) -> None:
    """:func:`draw_chart` written to ``path`` as PNG, atomically."""
    import cv2

    ok, png = cv2.imencode(".png", draw_chart(iterations, avg_loss, max_batches, maps, max_loss))
    if not ok:
        raise OSError(f"OpenCV could not encode the chart for {os.fspath(path)}")
    write_atomic(path, png.tobytes())
