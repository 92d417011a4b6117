"""GPU forward throughput: darknetpy on "cuda" next to darknetpy on the CPU, same cfg and
synthetic weights, with the largest difference between their outputs, and next to PyTorch
running the same layers on the same GPU (cuDNN benchmark mode; float32, and AMP float16 with
channels-last) when torch has CUDA.

    python benchmarks/forward_gpu.py [--batch 1 8] [--repeat 20] [CFG ...]

CFG defaults to benchmarks/small32.cfg plus darknet19, yolov4-tiny and yolov4 from
--cfg-dir when that folder exists. Prints median milliseconds per forward and images/s.
PyTorch's twin of a cfg is train_cpu.py's (its [yolo] heads return the raw head outputs).
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

import darknetpy as dn
from weights_gen import write_synthetic_weights
from train_cpu import torch_model

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


def torch_ms(cfg, batch, repeat, amp):
    """Median ms of a PyTorch forward of the cfg's twin, or None without torch/CUDA or a mapping."""
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        model, net = torch_model(cfg)
    except (ImportError, ValueError, KeyError):
        return None
    model = model.cuda().eval()
    x = torch.rand(batch, int(net["channels"]), int(net["height"]), int(net["width"]), device="cuda")
    if amp:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            model(x)
        torch.cuda.synchronize()

    for _ in range(3):  # cudnn.benchmark's trials
        run()
    return median_ms(run, repeat)


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
    print(f"{'cfg':<14}{'batch':>6}{'cpu ms':>10}{'cuda ms':>10}{'cuda img/s':>12}{'speed-up':>10}{'max diff':>10}"
          f"{'torch ms':>10}{'amp+cl ms':>10}")
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
                cpu.close()
                gpu.close()
                theirs = [torch_ms(cfg, batch, args.repeat, amp) for amp in (False, True)]
                print(f"{cfg.stem:<14}{batch:>6}{t_cpu:>10.2f}{t_gpu:>10.2f}{batch * 1e3 / t_gpu:>12.1f}"
                      f"{t_cpu / t_gpu:>10.1f}{diff:>10.2g}" +
                      "".join(f"{t:>10.2f}" if t else f"{'n/a':>10}" for t in theirs), flush=True)


if __name__ == "__main__":
    main()
