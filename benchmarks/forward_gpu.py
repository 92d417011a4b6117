"""GPU forward throughput: darknetpy on "cuda" next to darknetpy on the CPU, same cfg and
synthetic weights, with the largest difference between their outputs.

    python benchmarks/forward_gpu.py [--batch 1 8] [--repeat 20] [CFG ...]

CFG defaults to benchmarks/small32.cfg plus darknet19, yolov4-tiny and yolov4 from
--cfg-dir when that folder exists. Prints median milliseconds per forward and images/s.
(A PyTorch comparison on the same nets is still to come.)
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import darknetpy as dn
from weights_gen import write_synthetic_weights

HERE = Path(__file__).resolve().parent
MODELS = ["darknet19", "yolov4-tiny", "yolov4"]


def median_ms(fn, repeat):
    fn()  # warm-up: preparation, first-call allocations
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--cfg-dir", type=Path, default=HERE.parents[1] / "shared" / "darknet" / "cfg")
    parser.add_argument("cfgs", nargs="*", type=Path)
    args = parser.parse_args()
    cfgs = args.cfgs or [HERE / "small32.cfg"] + [args.cfg_dir / f"{m}.cfg" for m in MODELS
                                                   if (args.cfg_dir / f"{m}.cfg").exists()]
    print(f"darknetpy {dn.__version__}, {dn.cuda.device_count()} CUDA device(s), median of {args.repeat}")
    print(f"{'cfg':<14}{'batch':>6}{'cpu ms':>10}{'cuda ms':>10}{'cuda img/s':>12}{'speed-up':>10}{'max diff':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        for cfg in cfgs:
            weights = Path(tmp) / f"{cfg.stem}.weights"
            write_synthetic_weights(cfg, weights)
            for batch in args.batch:
                cpu = dn.Network(cfg, weights, batch=batch)
                gpu = dn.Network(cfg, weights, batch=batch, device="cuda")
                x = np.random.default_rng(0).random((batch,) + cpu.input_shape, dtype=np.float32)
                diff = float(np.abs(cpu.predict(x) - gpu.predict(x)).max())
                t_cpu = median_ms(lambda: cpu.predict(x), max(3, args.repeat // 5))
                t_gpu = median_ms(lambda: gpu.predict(x), args.repeat)
                print(f"{cfg.stem:<14}{batch:>6}{t_cpu:>10.2f}{t_gpu:>10.2f}{batch * 1e3 / t_gpu:>12.1f}"
                      f"{t_cpu / t_gpu:>10.1f}{diff:>10.2g}")
                cpu.close()
                gpu.close()


if __name__ == "__main__":
    main()
