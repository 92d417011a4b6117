#!/usr/bin/env bash
# The GPU check, in one go on a fresh GPU machine (under 10 minutes): builds darknetpy with
# its CUDA backend for this machine's GPU, runs every CUDA test (tests/gpu, and the layer
# tests' runs on "cuda"; the training and layer comparisons again without cuDNN), the
# forward and training benchmarks (next to PyTorch when it has CUDA) and writes a report.
#
#   tools/gpu_check.sh [REPORT]          REPORT defaults to gpu_report.txt
#
# Needs nvcc, an NVIDIA driver, and the packages of pyproject.toml's build requirements
# and test and cuda extras. Where pip cannot reach an index, put their wheels in .whl/
# first: they are installed from there. PYTHON picks the interpreter (default python3).
set -uo pipefail
cd "$(dirname "$0")/.."
report=$(realpath -m "${1:-gpu_report.txt}")
py=${PYTHON:-python3}
start=$(date +%s)

{
    echo "== darknetpy GPU check, $(date -u '+%F %T UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv,noheader || echo "nvidia-smi failed"
    nvcc --version | tail -1

    if ! $py -c "import scipy_openblas32, Cython, pytest, nvidia.cu13, nvidia.cudnn, nvidia.nccl" 2>/dev/null; then
        echo "== installing the build and test requirements"
        if ls .whl/*.whl >/dev/null 2>&1; then
            $py -m pip install -q --no-index --no-deps .whl/*.whl
        else
            $py -m pip install -q scipy-openblas32 Cython pytest nvidia-cublas nvidia-cudnn-cu13 nvidia-nccl-cu13
        fi
    fi

    cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.')
    echo "== build (kernels for sm_${cap:-?} only)"
    rm -rf build darknetpy/_libdarknet*.so
    DARKNETPY_CUDA=1 DARKNETPY_CUDA_ARCHS="${cap:-90}" $py setup.py -q build_ext --inplace -j"$(nproc)" \
        >build.log 2>&1 || { tail -30 build.log; echo "== BUILD FAILED"; exit 2; }
    grep -iE "error|warning: " build.log | grep -v FutureWarning

    echo "== devices"
    PYTHONPATH=. $py -c "
import darknetpy as dn
print('available:', dn.cuda.is_available(), dn.cuda.unavailable_reason() or '')
print('devices:', dn.cuda.device_count())
print('memory (free, total) of cuda:0:', dn.cuda.memory_info(0))
print('libraries (None: loads):', dn.cuda.libraries())"

    echo "== tests marked cuda"
    PYTHONPATH=. timeout 180 $py -m pytest -q -p no:cacheprovider -m cuda -rs tests/gpu tests/layers
    rc=$?
    echo "== the CUDA comparisons without cuDNN (DARKNETPY_CUDNN=0: im2col + cuBLAS)"
    DARKNETPY_CUDNN=0 PYTHONPATH=. timeout 90 $py -m pytest -q -p no:cacheprovider -m cuda -x \
        tests/gpu/test_train_cuda.py tests/gpu/test_layers_cuda.py
    rc2=$?
    [ $rc -eq 0 ] && rc=$rc2

    echo "== forward throughput (benchmarks/forward_gpu.py; CFG_DIR=folder of darknet cfgs adds the big nets)"
    PYTHONPATH=.:benchmarks timeout 100 $py benchmarks/forward_gpu.py --repeat 10 \
        ${CFG_DIR:+--cfg-dir "$CFG_DIR"} || echo "benchmark failed or timed out"
    echo "== training throughput (benchmarks/train_gpu.py, next to PyTorch cuDNN / AMP + channels-last)"
    PYTHONPATH=. timeout 120 $py benchmarks/train_gpu.py --repeat 5 \
        ${CFG_DIR:+--cfg-dir "$CFG_DIR"} || echo "benchmark failed or timed out"
    echo "== pytest exit $rc, $(( $(date +%s) - start )) s in all"
    exit $rc
} 2>&1 | tee "$report"
exit "${PIPESTATUS[0]}"
