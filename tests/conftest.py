"""Shared fixtures. Oracle data lives in ../shared (beside the repo); tests that
need it skip cleanly when it is absent, as it is in a user's checkout."""
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
