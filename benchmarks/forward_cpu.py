"""CPU forward time at batch 1: darknetpy next to OpenCV 4.x DNN (its darknet
importer), same cfg, same weights, same thread count, in one run.

    python benchmarks/forward_cpu.py [--threads 2] [--repeat 10] [--cfg-dir ../shared/darknet/cfg]

Prints a table of median milliseconds and the ratio darknetpy / OpenCV (< 1: faster).
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

import darknetpy as dn
from weights_gen import write_synthetic_weights

MODELS = ["darknet19", "darknet53", "yolov4-tiny", "yolov4"]


def median_ms(fn, repeat):
    fn()  # warm-up: first-call allocations and thread start
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_darknetpy(cfg, weights, threads, repeat):
    net = dn.Network(cfg, weights, threads=threads)
    x = np.random.default_rng(0).random(net.input_shape, dtype=np.float32)
    return median_ms(lambda: net.predict(x), repeat)


def time_opencv(cfg, weights, threads, repeat):
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    c, h, w = dn.Network(cfg, batch=1).input_shape
    blob = np.random.default_rng(0).random((1, c, h, w), dtype=np.float32)

    def forward():
        net.setInput(blob)
        return net.forward(net.getUnconnectedOutLayersNames())

    return median_ms(forward, repeat)


ENGINES = {"darknetpy": time_darknetpy, "opencv": time_opencv}


def run_isolated(engine, cfg, weights, threads, repeat):
    """Time one engine in its own process: two thread pools in one process slow each other down."""
    out = subprocess.run([sys.executable, __file__, "--worker", engine, "--threads", str(threads), "--repeat",
                          str(repeat), str(cfg), str(weights)], check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--cfg-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "darknet" / "cfg")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("models", nargs="*", default=MODELS)
    args = parser.parse_args()
    if args.worker:
        cfg, weights = args.models
        print(ENGINES[args.worker](Path(cfg), Path(weights), args.threads, args.repeat))
        return
    print(f"OpenCV {cv2.__version__}, darknetpy {dn.__version__}, threads={args.threads}, batch 1, "
          f"median of {args.repeat}")
    print(f"{'model':<14}{'input':>16}{'darknetpy ms':>14}{'OpenCV ms':>12}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            cfg = args.cfg_dir / f"{name}.cfg"
            weights = Path(tmp) / f"{name}.weights"
            write_synthetic_weights(cfg, weights)
            shape = dn.Network(cfg, batch=1).input_shape
            ours, theirs = (run_isolated(e, cfg, weights, args.threads, args.repeat) for e in ENGINES)
            print(f"{name:<14}{'x'.join(map(str, shape)):>16}{ours:>14.1f}{theirs:>12.1f}{ours / theirs:>8.2f}")


if __name__ == "__main__":
    main()
