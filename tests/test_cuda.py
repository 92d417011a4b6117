"""CUDA without a GPU (as here and in CI): the package imports, says why CUDA is unusable,
refuses device="cuda" with DeviceError (never a silent CPU run), and the CUDA backend is
compiled into the extension whenever nvcc was there to build it."""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
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


@NO_GPU
def test_training_network_on_cuda_raises_device_error(tmp_path):
    """A training build (batch=None) is refused the same way, before anything is allocated."""
    cfg = tmp_path / "t.cfg"
    cfg.write_text(CFG.replace("[net]\n", "[net]\nbatch=2\nsubdivisions=1\n") + "\n[avgpool]\n\n[softmax]\n")
    with pytest.raises(dn.DeviceError) as e:
        dn.Network(cfg, batch=None, device="cuda")
    assert str(e.value) == dn.cuda.unavailable_reason()


@NO_GPU
@pytest.mark.parametrize("train", ["train_classifier", "train_detector"])
def test_trainers_pass_the_device_through(tmp_path, train):
    """train_classifier/train_detector build their network on `device`: no GPU, DeviceError."""
    cfg = tmp_path / "t.cfg"
    cfg.write_text(CFG.replace("[net]\n", "[net]\nbatch=2\nsubdivisions=1\n") + "\n[avgpool]\n\n[softmax]\n")
    (tmp_path / "a_cat.png").write_bytes(b"")
    (tmp_path / "train.txt").write_text(str(tmp_path / "a_cat.png") + "\n")
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    data = tmp_path / "t.data"
    data.write_text(f"classes=2\ntrain={tmp_path / 'train.txt'}\nlabels={tmp_path / 'labels.txt'}\n"
                    f"names={tmp_path / 'labels.txt'}\nbackup={tmp_path}\n")
    with pytest.raises(dn.DeviceError, match=dn.cuda.unavailable_reason()[:20]):
        getattr(dn, train)(data, cfg, device="cuda")


@NO_GPU
def test_cli_train_device_flags_without_gpu(caplog):
    """-gpus/-i on a train verb: the CPU with a warning saying why; no flag, no warning."""
    from argparse import Namespace
    from darknetpy.cli import _train_device

    assert _train_device(Namespace(gpus=None, i=None)) == "cpu"
    assert _train_device(Namespace(gpus=None, i=0)) == "cpu" and not caplog.records
    with caplog.at_level("WARNING", logger="darknetpy"):
        assert _train_device(Namespace(gpus="0,1", i=None)) == "cpu"
        assert _train_device(Namespace(gpus=None, i=2)) == "cpu"
    assert len(caplog.records) == 2
    assert all(dn.cuda.unavailable_reason() in r.getMessage() for r in caplog.records)
    with pytest.raises(ValueError, match="comma list"):
        _train_device(Namespace(gpus="0,x", i=None))


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


def test_load_libraries_finds_the_wheels_or_does_nothing(monkeypatch, tmp_path):
    """cuBLAS, cuDNN and NCCL are preloaded from nvidia/{cu13,cudnn,nccl}/lib on the import path;
    without them nothing fails here (the engine reports it when a network needs them)."""
    loaded = []
    monkeypatch.setattr(dn.cuda.ctypes, "CDLL", lambda path, mode=0: loaded.append(path))
    monkeypatch.setattr(dn.cuda, "_loaded", False)
    cublas, cudnn, nccl = (tmp_path / "nvidia" / sub / "lib" for sub in ("cu13", "cudnn", "nccl"))
    for lib in (cublas, cudnn, nccl):
        lib.mkdir(parents=True)
    monkeypatch.syspath_prepend(str(tmp_path))
    dn.cuda.load_libraries()
    assert not any(p.startswith(str(tmp_path)) for p in loaded)  # (real wheels elsewhere may load)
    loaded.clear()
    expected = [cublas / "libcublasLt.so.13", cublas / "libcublas.so.13", cudnn / "libcudnn.so.9",
                nccl / "libnccl.so.2"]
    for path in expected:
        path.write_bytes(b"")
    monkeypatch.setattr(dn.cuda, "_loaded", False)
    dn.cuda.load_libraries()
    assert loaded == [str(p) for p in expected]


def _library_errors(env: dict, preload: bool) -> dict:
    """dn.cuda.libraries() (preload) or the engine's own lookup (no preload) in a fresh process."""
    code = ("import json, darknetpy as dn\n"
            + ("print(json.dumps(dn.cuda.libraries()))" if preload else
               "print(json.dumps({n: dn._libdarknet.cuda_library_error(n) for n in ('cublas', 'cudnn', 'nccl')}))"))
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, **env}, capture_output=True, text=True,
                         check=True, cwd=Path(dn.__file__).parents[1])
    return json.loads(out.stdout)


def _wheel_installed(sub: str, name: str) -> bool:
    spec = importlib.util.find_spec("nvidia")
    return any((Path(p) / sub / name).exists() for p in (spec.submodule_search_locations if spec else []))


@pytest.mark.skipif(not shutil.which("nvcc"), reason="a build without CUDA has no GPU libraries to load")
def test_library_loader_messages():
    """Loading needs no GPU: with the wheels installed both load; DARKNETPY_CUDNN=0 turns cuDNN off (the
    convolutions then run as im2col + cuBLAS); a library the loader cannot find is named with its package."""
    if all(_wheel_installed(*lib) for lib in (("cu13/lib", "libcublas.so.13"), ("cudnn/lib", "libcudnn.so.9"),
                                               ("nccl/lib", "libnccl.so.2"))):
        assert _library_errors({}, preload=True) == {"cublas": None, "cudnn": None, "nccl": None}
    assert _library_errors({"DARKNETPY_CUDNN": "0"}, preload=True)["cudnn"] == "DARKNETPY_CUDNN=0"
    if (Path(_libdarknet.__file__).parents[1] / "nvidia").exists():
        pytest.skip("the wheels sit beside darknetpy (an installed package): the rpath finds them")
    errors = _library_errors({}, preload=False)  # an in-place build: only the loader's own search
    assert 'pip install "darknetpy-engine[cuda]"' in errors["cudnn"] and "nvidia-cudnn-cu13" in errors["cudnn"]
    assert 'pip install "darknetpy-engine[cuda]"' in errors["cublas"] and "nvidia-cublas" in errors["cublas"]
    assert "pip install nvidia-nccl-cu13" in errors["nccl"]


ABI_CHECK = """
#include <stddef.h>
#include <cudnn.h>
#include <nccl.h>
#include "cuda/dnn.h"
#define SAME(a, b) _Static_assert((a) == (b), #a " != " #b);
SAME(DN_DNN_SUCCESS, CUDNN_STATUS_SUCCESS) SAME(DN_DNN_NCHW, CUDNN_TENSOR_NCHW) SAME(DN_DNN_FLOAT, CUDNN_DATA_FLOAT)
SAME(DN_DNN_CROSS_CORRELATION, CUDNN_CROSS_CORRELATION) SAME(DN_DNN_FMA_MATH, CUDNN_FMA_MATH)
SAME(DN_NCCL_SUCCESS, ncclSuccess) SAME(DN_NCCL_FLOAT32, ncclFloat32) SAME(DN_NCCL_SUM, ncclSum)
#define PERF(T) SAME(sizeof(dn_cuda_dnn_perf), sizeof(T)) SAME(offsetof(dn_cuda_dnn_perf, algo), offsetof(T, algo)) \\
    SAME(offsetof(dn_cuda_dnn_perf, status), offsetof(T, status)) \\
    SAME(offsetof(dn_cuda_dnn_perf, memory), offsetof(T, memory))
PERF(cudnnConvolutionFwdAlgoPerf_t) PERF(cudnnConvolutionBwdDataAlgoPerf_t) PERF(cudnnConvolutionBwdFilterAlgoPerf_t)
"""


def test_loader_abi_matches_the_wheels_headers(tmp_path):
    """The engine declares the few cuDNN and NCCL types and values it uses itself (the libraries are
    opened at run time): they must be the headers' of the nvidia-cudnn-cu13 / nvidia-nccl-cu13 wheels."""
    nvcc, cc = shutil.which("nvcc"), shutil.which("cc") or shutil.which("gcc")
    spec = importlib.util.find_spec("nvidia")
    folders = [Path(p) for p in (spec.submodule_search_locations if spec else [])]
    headers = [next((f / sub / "include" for f in folders if (f / sub / "include" / name).exists()), None)
               for sub, name in (("cudnn", "cudnn.h"), ("nccl", "nccl.h"))]
    if not (nvcc and cc and all(headers)):
        pytest.skip("needs nvcc, a C compiler and the nvidia-cudnn-cu13 and nvidia-nccl-cu13 wheels' headers")
    src = Path(__file__).resolve().parents[1] / "libdarknet"
    (tmp_path / "abi.c").write_text(ABI_CHECK)
    cuda_include = next((d for d in (Path(nvcc).resolve().parents[1] / "include", Path("/usr/local/cuda/include"))
                         if (d / "cuda_runtime_api.h").exists()), None)
    if cuda_include is None:
        pytest.skip("the CUDA headers were not found")
    cmd = [cc, "-fsyntax-only", "-std=gnu11", "-Wno-deprecated-declarations", f"-I{src / 'src'}",
           f"-I{src / 'include'}", f"-I{cuda_include}"] + [f"-I{h}" for h in headers] + [str(tmp_path / "abi.c")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
