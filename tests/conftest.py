"""Shared fixtures. Oracle data lives in ../shared (beside the repo); tests that
need it skip cleanly when it is absent, as it is in a user's checkout."""
import shutil
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"


@pytest.fixture(scope="session")
def shared() -> Path:
    if not SHARED.is_dir():
        pytest.skip("../shared (upstream cfgs and oracle data) is not present")
    return SHARED


@pytest.fixture(scope="session")
def oracle(shared) -> Path:
    return shared / "oracle"


def read_f32(path, shape=None):
    a = np.fromfile(path, dtype="<f4")
    return a.reshape(shape) if shape is not None else a


def conv(filters, size=3, stride=1, act="leaky", bn=1, extra=""):
    """A [convolutional] section of cfg text (pad=1: same-size output at stride 1)."""
    return (f"[convolutional]\nbatch_normalize={bn}\nfilters={filters}\nsize={size}\nstride={stride}\npad=1\n"
            f"activation={act}\n{extra}\n")


MAXPOOL = "[maxpool]\nsize=2\nstride=2\n\n"


def package_env() -> dict:
    """Environment for a child interpreter that imports the same darknetpy as this one
    (the installed package in CI, the in-place build during development)."""
    import os

    import darknetpy

    return {**os.environ, "PYTHONPATH": str(Path(darknetpy.__file__).resolve().parents[1])}


COLOURS = ("red", "green", "blue", "yellow")
VALID_ORDER = [f"{c}_{i:02d}.jpg" for c in COLOURS for i in range(10)]


def oracle_lines(oracle: Path, name: str) -> list:
    """Upstream's lines after ' TOP calculation...' and the blank line."""
    text = (oracle / "cli" / name).read_text()
    return text.split(" TOP calculation...\n\n", 1)[1].split("\n")


@pytest.fixture(scope="session")
def colors(oracle, tmp_path_factory) -> dict:
    """The 40 images in a neutral folder (the path 'shared' contains the label 'red'), with
    a .data file as upstream's run: classes=4, labels red/green/blue/yellow, top=2."""
    root = tmp_path_factory.mktemp("cls")
    assert not any(label in str(root) for label in COLOURS)
    images = root / "data"
    shutil.copytree(oracle / "colors" / "data", images)
    (root / "labels.txt").write_text("".join(f"{c}\n" for c in COLOURS))
    (root / "valid.list").write_text("".join(f"{images / n}\n" for n in VALID_ORDER))
    data = root / "colors.data"
    data.write_text(f"classes=4\nvalid={root / 'valid.list'}\nlabels={root / 'labels.txt'}\ntop=2\n")
    return {"root": root, "images": images, "data": data, "cfg": oracle / "cli" / "small_cls.cfg",
            "weights": oracle / "cli" / "small_cls_20iter.weights"}


def hsv_distort_reference(rgb, dhue, dsat, dexp):
    """darknet's distort_image per spec §5.5 in float64: rgb_to_hsv, S*dsat, V*dexp, hue shifted and
    wrapped once, hsv_to_rgb (sectors), clamp."""
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    mx, mn = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    with np.errstate(all="ignore"):
        s = np.where(mx == 0, 0, (mx - mn) / mx)
        h = np.where(r == mx, (g - b) / (mx - mn), np.where(g == mx, 2 + (b - r) / (mx - mn), 4 + (r - g) / (mx - mn)))
    h = np.where(h < 0, h + 6, h) / 6 + dhue
    h = np.where(h > 1, h - 1, np.where(h < 0, h + 1, h))
    s, v = s * dsat, mx * dexp
    i, f = np.floor(6 * h), 6 * h - np.floor(6 * h)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    sector = [i == 0, i == 1, i == 2, i == 3, i == 4]
    out = np.stack([np.select(sector, [v, q, p, p, t], v), np.select(sector, [t, v, v, q, p], p),
                    np.select(sector, [p, p, t, v, v], q)], -1)
    return np.clip(np.where((s == 0)[..., None], v[..., None], out), 0, 1)
