"""The fuzz targets of tests/fuzz (issue 12): saved findings replay cleanly (without
atheris), and each target fuzzes briefly without a finding (skipped without atheris).
Long runs: tests/fuzz/README.md."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import package_env

FUZZ = Path(__file__).resolve().parent / "fuzz"
TARGETS = ["fuzz_cfg", "fuzz_weights", "fuzz_image"]


def run(args, timeout=60):
    proc = subprocess.run([sys.executable, *map(str, args)], env=package_env(), capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"status {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc.stderr


@pytest.mark.parametrize("target", TARGETS)
def test_saved_findings_replay_cleanly(target):
    found = FUZZ / "regressions" / target
    paths = sorted(found.iterdir()) if found.is_dir() else []
    if not paths:
        pytest.skip(f"no saved findings for {target}")
    err = run([FUZZ / "replay.py", target, *paths])
    assert f"replayed {len(paths)} inputs" in err


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
@pytest.mark.parametrize("target", TARGETS)
def test_fuzzes_briefly_without_a_finding(target):
    # no RSS limit here: libFuzzer reads the peak RSS, which Linux carries over from this
    # (forking, long-running) test process; the targets' own max_memory bounds the networks
    err = run([FUZZ / f"{target}.py", "-max_total_time=1", "-runs=5000", "-rss_limit_mb=0"])
    assert "Done" in err and "inputs tried: 2" in err
