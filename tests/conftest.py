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
