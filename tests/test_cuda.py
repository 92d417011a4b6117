"""CUDA without a GPU (as here and in CI): the package imports, says why CUDA is unusable,
refuses device="cuda" with DeviceError (never a silent CPU run), and the CUDA backend is
compiled into the extension whenever nvcc was there to build it."""
import shutil
from pathlib import Path

import numpy as np
import pytest

import darknetpy as dn
from darknetpy import _libdarknet

NO_GPU = pytest.mark.skipif(dn.cuda.is_available(), reason="a CUDA GPU is usable here")

CFG = """[net]
width=8
height=8
channels=3

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky
"""


@pytest.fixture
def cfg(tmp_path) -> Path:
    path = tmp_path / "small.cfg"
    path.write_text(CFG)
    return path


@NO_GPU
def test_unavailable_with_a_reason():
    assert dn.cuda.is_available() is False
    reason = dn.cuda.unavailable_reason()
    assert isinstance(reason, str) and len(reason) > 20
    assert dn.cuda.device_count() == 0


@NO_GPU
def test_memory_info_raises_device_error():
    with pytest.raises(dn.DeviceError, match=dn.cuda.unavailable_reason()[:20]):
        dn.cuda.memory_info(0)


@NO_GPU
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7"])
def test_cuda_network_raises_device_error_saying_why(cfg, device):
    with pytest.raises(dn.DeviceError) as e:
        dn.Network(cfg, device=device)
    assert str(e.value) == dn.cuda.unavailable_reason()


@NO_GPU
def test_classifier_on_cuda_raises_device_error(tmp_path):
    cfg = tmp_path / "clf.cfg"
    cfg.write_text(CFG + "\n[avgpool]\n\n[softmax]\n")
    with pytest.raises(dn.DeviceError, match=dn.cuda.unavailable_reason()[:20]):
        dn.Classifier(cfg, None, names=["a", "b", "c", "d"], device="cuda")


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "CPU", "cuda0", ""])
def test_malformed_device_is_a_value_error(cfg, device):
    with pytest.raises(ValueError, match="cpu"):
        dn.Network(cfg, device=device)


def test_explicit_cpu_is_the_default(cfg):
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    with dn.Network(cfg) as a, dn.Network(cfg, device="cpu") as b:
        assert b.device == "cpu" and b.backend.startswith("cpu")
        np.testing.assert_array_equal(a.predict(x), b.predict(x))


def test_engine_device_strings(cfg):
    """The engine's own parser (behind Python's) refuses unknown devices with InputError."""
    with pytest.raises(dn.InputError, match="unknown device 'tpu'"):
        _libdarknet.NetworkHandle(str(cfg), 1, device="tpu")


@pytest.mark.skipif(not shutil.which("nvcc"), reason="nvcc is not installed, so the build has no CUDA backend")
def test_cuda_backend_compiled_and_linked_when_nvcc_is_present():
    """GPU code is in the extension (the runtime is linked statically, so the import above
    worked without one) and the engine reports a missing driver/GPU, not a CPU-only build."""
    data = Path(_libdarknet.__file__).read_bytes()
    assert b".nv_fatbin" in data and b"dn_cuda_kernels_convolutional" in data
    count, reason = _libdarknet.cuda_device_count()
    assert reason is None or "built without CUDA" not in reason


def test_load_libraries_finds_the_cublas_wheel_or_does_nothing(monkeypatch, tmp_path):
    """cuBLAS is preloaded from nvidia/cu13/lib on the import path; without it nothing fails
    here (the engine reports it when a network needs it)."""
    loaded = []
    monkeypatch.setattr(dn.cuda.ctypes, "CDLL", lambda path, mode=0: loaded.append(path))
    monkeypatch.setattr(dn.cuda, "_loaded", False)
    lib = tmp_path / "nvidia" / "cu13" / "lib"
    lib.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    dn.cuda.load_libraries()
    assert not any(p.startswith(str(tmp_path)) for p in loaded)  # (a real wheel elsewhere may load)
    loaded.clear()
    for name in ("libcublasLt.so.13", "libcublas.so.13"):
        (lib / name).write_bytes(b"")
    monkeypatch.setattr(dn.cuda, "_loaded", False)
    dn.cuda.load_libraries()
    assert loaded == [str(lib / "libcublasLt.so.13"), str(lib / "libcublas.so.13")]
