"""How darknetpy's CPU forward time scales with batch, input size and threads: ms per image at
batch 1, 4 and 16, at 320, 416 and 608 pixels, and with 1 and 2 threads, each point in its own
process (forward_cpu.py's worker), synthetic weights. Linear scaling shows as a constant "per
image" or "per Mpixel" column; "vs first" is each row's figure over the first row's.

    python benchmarks/scaling_cpu.py [--repeat 5] [--cfg-dir ../shared/darknet/cfg] [model]   (default yolov4)
"""
import argparse
import tempfile
from pathlib import Path

from forward_cpu import run_isolated, sized_cfg
from weights_gen import write_synthetic_weights


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cfg-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "darknet" / "cfg")
    parser.add_argument("model", nargs="?", default="yolov4")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        def point(size, batch, threads):
            directory = Path(tmp) / str(size)
            directory.mkdir(exist_ok=True)
            cfg = sized_cfg(args.cfg_dir / f"{args.model}.cfg", size, directory)
            weights = directory / f"{args.model}.weights"
            if not weights.exists():
                write_synthetic_weights(cfg, weights)
            return run_isolated("darknetpy", cfg, weights, threads, args.repeat, batch)[0]

        def table(title, unit, rows):
            print(f"\n{args.model}, {title}")
            print(f"{'':>10}{'ms/forward':>12}{unit:>14}{'vs first':>10}")
            first = None
            for label, ms, per in rows:
                first = first or per
                print(f"{label:>10}{ms:>12.1f}{per:>14.2f}{per / first:>10.2f}")

        rows = []
        for batch in (1, 4, 16):
            ms = point(416, batch, 2)
            rows.append((f"batch {batch}", ms, ms / batch))
        table("416 x 416, 2 threads", "ms/image", rows)
        rows = []
        for size in (320, 416, 608):
            ms = point(size, 1, 2)
            rows.append((f"{size}", ms, ms / (size * size / 1e6)))
        table("batch 1, 2 threads", "ms/Mpixel", rows)
        rows = []
        for threads in (1, 2):
            ms = point(416, 1, threads)
            rows.append((f"{threads} thr", ms, ms * threads))
        table("416 x 416, batch 1 (per image x threads: equal = perfect speed-up)", "ms x threads", rows)


if __name__ == "__main__":
    main()
