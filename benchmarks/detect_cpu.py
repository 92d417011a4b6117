"""End-to-end CPU detection at batch 1 (decode, resize, forward, boxes, NMS): darknetpy's Detector next to
OpenCV 4.x DNN's cv2.dnn_DetectionModel, same cfg, weights, image, thresholds (0.25, NMS 0.45) and threads,
each engine in its own process.

    python benchmarks/detect_cpu.py [--threads 2] [--repeat 10] [--size 416] [--image dog.jpg]
                                    [--cfg-dir ../shared/darknet/cfg]

Prints median milliseconds, the ratio darknetpy / OpenCV (< 1: faster) and darknetpy's boxes+NMS time as a
share of its forward time.
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2

import darknetpy as dn
from weights_gen import write_synthetic_weights

MODELS = ["yolov4-tiny", "yolov4"]
SHARED = Path(__file__).resolve().parents[2] / "shared"


def median_ms(fn, repeat):
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_darknetpy(cfg, weights, image, threads, repeat, size):
    det = dn.Detector(cfg, weights, threads=threads)
    det.network.resize(size, size)
    total = median_ms(lambda: det.detect(str(image), 0.25, 0.45), repeat)
    x = det.preprocess(dn.load_image(image))
    forward = median_ms(lambda: det.network.predict(x), repeat)
    h, w = cv2.imread(str(image)).shape[:2]
    kind = dn.detector.NMS_KINDS.index(det.nms_kind)
    boxes = median_ms(lambda: det.network._handle.boxes(0, w, h, 0.25, 0.5, False, True, 0.45, kind, 0.6), repeat)
    return total, forward, boxes


def time_opencv(cfg, weights, image, threads, repeat, size):
    cv2.setNumThreads(threads)
    net = cv2.dnn.readNetFromDarknet(str(cfg), str(weights))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    model = cv2.dnn_DetectionModel(net)
    model.setInputParams(size=(size, size), scale=1 / 255, swapRB=True)
    return (median_ms(lambda: model.detect(cv2.imread(str(image)), 0.25, 0.45), repeat),)


ENGINES = {"darknetpy": time_darknetpy, "opencv": time_opencv}


def run_isolated(engine, cfg, weights, image, threads, repeat, size):
    """The worker's numbers, or None after printing why it failed (the other engine still runs)."""
    out = subprocess.run([sys.executable, __file__, "--worker", engine, "--threads", str(threads), "--repeat",
                          str(repeat), "--size", str(size), "--image", str(image), str(cfg), str(weights)],
                         capture_output=True, text=True)
    if out.returncode != 0:
        print(f"{engine} worker failed on {cfg.name} (exit {out.returncode}): {out.stderr.strip()[-400:]}")
        return None
    return [float(v) for v in out.stdout.split()[-3 if engine == "darknetpy" else -1:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--size", type=int, default=416, help="network input width and height")
    parser.add_argument("--image", type=Path, default=SHARED / "darknet" / "data" / "dog.jpg")
    parser.add_argument("--cfg-dir", type=Path, default=SHARED / "darknet" / "cfg")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("models", nargs="*", default=MODELS)
    args = parser.parse_args()
    if args.worker:
        cfg, weights = args.models
        print(*ENGINES[args.worker](Path(cfg), Path(weights), args.image, args.threads, args.repeat, args.size))
        return
    print(f"OpenCV {cv2.__version__}, darknetpy {dn.__version__}, threads={args.threads}, batch 1, "
          f"median of {args.repeat}, {args.size}x{args.size}, image {args.image.name}, synthetic weights")
    print(f"{'model':<14}{'darknetpy ms':>14}{'OpenCV ms':>12}{'ratio':>8}{'boxes+NMS / forward':>22}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            cfg = args.cfg_dir / f"{name}.cfg"
            weights = Path(tmp) / f"{name}.weights"
            write_synthetic_weights(cfg, weights)
            ours = run_isolated("darknetpy", cfg, weights, args.image, args.threads, args.repeat, args.size)
            theirs = run_isolated("opencv", cfg, weights, args.image, args.threads, args.repeat, args.size)
            total, forward, boxes = ours or (float("nan"),) * 3
            opencv = theirs[0] if theirs else float("nan")
            print(f"{name:<14}{total:>14.1f}{opencv:>12.1f}{total / opencv:>8.2f}{boxes / forward:>21.2%}")


if __name__ == "__main__":
    main()
