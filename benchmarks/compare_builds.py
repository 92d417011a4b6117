"""darknetpy next to another build of itself: forward time at batch 1 of each model,
each build in its own processes, rounds interleaved, in one run.

    python benchmarks/compare_builds.py --before OTHER_CHECKOUT [--after .] [--rounds 3] [models...]

OTHER_CHECKOUT is a directory holding an in-place build (python setup.py build_ext
--inplace), e.g. a git worktree of an earlier commit. Prints median milliseconds and
the ratio after / before (< 1: faster). Use it for changes that must not cost speed.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ["darknet19", "darknet53", "yolov4-tiny", "yolov4"]


def time_forward(cfg, weights, threads, repeat):
    import time

    import numpy as np

    import darknetpy as dn

    net = dn.Network(cfg, weights, threads=threads)
    x = np.random.default_rng(0).random(net.input_shape, dtype=np.float32)
    net.predict(x)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        net.predict(x)
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def run(build, cfg, weights, threads, repeat):
    env = {**os.environ, "PYTHONPATH": f"{build}{os.pathsep}{HERE}"}
    out = subprocess.run([sys.executable, __file__, "--worker", "--threads", str(threads), "--repeat", str(repeat),
                          str(cfg), str(weights)], env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--before", type=Path)
    parser.add_argument("--after", type=Path, default=HERE.parent)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cfg-dir", type=Path, default=HERE.parents[1] / "shared" / "darknet" / "cfg")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("models", nargs="*", default=MODELS)
    args = parser.parse_args()
    if args.worker:
        print(time_forward(*args.models, args.threads, args.repeat))
        return
    if args.before is None:
        parser.error("--before is required")
    from weights_gen import write_synthetic_weights

    print(f"before {args.before.resolve()}, after {args.after.resolve()}: threads={args.threads}, batch 1, "
          f"median of {args.rounds} rounds x {args.repeat} forwards")
    print(f"{'model':<14}{'before ms':>12}{'after ms':>12}{'ratio':>8}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            cfg = args.cfg_dir / f"{name}.cfg"
            weights = Path(tmp) / f"{name}.weights"
            write_synthetic_weights(cfg, weights)
            before, after = [], []
            for _ in range(args.rounds):
                before.append(run(args.before.resolve(), cfg, weights, args.threads, args.repeat))
                after.append(run(args.after.resolve(), cfg, weights, args.threads, args.repeat))
            b, a = statistics.median(before), statistics.median(after)
            print(f"{name:<14}{b:>12.1f}{a:>12.1f}{a / b:>8.2f}")


if __name__ == "__main__":
    main()
