"""CPU speed at each instruction-set level this machine runs (DARKNETPY_CPU=baseline|avx2|avx512):
the packed GEMM of one 1x1 convolution (its layer time inside the forward) next to numpy's OpenBLAS
sgemm of the same shape (OpenBLAS picks its own kernel for this CPU), and whole-network forwards. Each level runs in its own process.

    python benchmarks/isa_cpu.py [--threads 2] [--repeat 20] [--cfg-dir ../shared/darknet/cfg] [models...]

Prints GFLOPS and ms per level. A level far below the others on the GEMM rows has a kernel the
compiler built badly for it: the x86-64-v3 (avx2) build once ran its GEMM at 15 GFLOPS per core
while OpenBLAS ran at 90, which no benchmark on an AVX-512 machine showed.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from forward_cpu import median_ms, warm_up
from weights_gen import write_synthetic_weights

LEVELS = ["baseline", "avx2", "avx512"]
# (channels in, filters, map side): 1x1 convolutions, a GEMM of (filters, channels) x (channels, side^2)
SHAPES = [(128, 128, 104), (256, 256, 52), (512, 512, 26)]
MODELS = ["darknet19", "yolov4-tiny"]

ONE_CONV = """[net]
width={side}
height={side}
channels={c}

[convolutional]
batch_normalize=1
filters={f}
size=1
stride=1
pad=0
activation=linear
"""


def worker(threads, repeat, cfgs, tmp):
    """This process's level: its backend, GFLOPS of each shape (ours, OpenBLAS) and ms per model."""
    import numpy as np

    import darknetpy as dn

    gemm = []
    for c, f, side in SHAPES:
        cfg = Path(tmp) / f"conv_{c}_{f}_{side}.cfg"
        cfg.write_text(ONE_CONV.format(side=side, c=c, f=f))
        weights = cfg.with_suffix(".weights")
        write_synthetic_weights(cfg, weights)
        flops = 2.0 * c * f * side * side
        with dn.Network(cfg, weights, threads=threads) as net:
            x = np.random.default_rng(0).random(net.input_shape, dtype=np.float32)
            warm_up(lambda: net.predict(x))
            net.time_layers()   # the convolution alone: not the input and output copies of predict
            for _ in range(repeat):
                net.predict(x)
            ours = flops / net.layer_times()[0] / 1e6
            backend = net.backend
        a = np.random.default_rng(1).random((f, c), dtype=np.float32)
        b = x.reshape(c, side * side)
        blas = flops / median_ms(lambda: a @ b, repeat) / 1e6
        gemm.append((ours, blas))
    models = []
    for cfg, weights in cfgs:
        with dn.Network(cfg, weights, threads=threads) as net:
            x = np.random.default_rng(0).random(net.input_shape, dtype=np.float32)
            models.append(median_ms(lambda: net.predict(x), repeat))
    return {"backend": backend, "gemm": gemm, "models": models}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cfg-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "darknet" / "cfg")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("models", nargs="*", default=MODELS)
    args = parser.parse_args()
    if args.worker:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(worker(args.threads, args.repeat, json.loads(args.worker), tmp)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        cfgs = []
        for name in args.models:
            weights = Path(tmp) / f"{name}.weights"
            write_synthetic_weights(args.cfg_dir / f"{name}.cfg", weights)
            cfgs.append((str(args.cfg_dir / f"{name}.cfg"), str(weights)))
        results = {}
        for level in LEVELS:
            env = {**os.environ, "DARKNETPY_CPU": level, "OPENBLAS_NUM_THREADS": str(args.threads)}
            out = subprocess.run([sys.executable, __file__, "--threads", str(args.threads), "--repeat",
                                  str(args.repeat), "--worker", json.dumps(cfgs)], env=env, capture_output=True,
                                 text=True)
            if out.returncode:   # a level this CPU lacks
                print(f"{level}: not run ({out.stderr.strip().splitlines()[-1]})")
                continue
            results[level] = json.loads(out.stdout.splitlines()[-1])
    print(f"threads={args.threads}; GEMM: one 1x1 convolution (in, filters, side), mean of {args.repeat}, next to "
          f"numpy's OpenBLAS (median), GFLOPS; models: median ms")
    print(f"{'':<22}" + "".join(f"{r['backend']:>24}" for r in results.values()))
    for i, (c, f, side) in enumerate(SHAPES):
        cells = "".join(f"{r['gemm'][i][0]:>9.0f} / {r['gemm'][i][1]:>4.0f} BLAS{'':>3}" for r in results.values())
        print(f"{f'1x1 {c}->{f} {side}x{side}':<22}{cells}")
    for i, name in enumerate(args.models):
        print(f"{name + ' ms':<22}" + "".join(f"{r['models'][i]:>24.1f}" for r in results.values()))


if __name__ == "__main__":
    main()
