"""CPU forward time: darknetpy next to OpenCV 4.x DNN (its darknet importer), and next to ONNX Runtime
and OpenVINO on darknetpy's ONNX export of the same network; same cfg, same weights, same thread count,
same batch, each engine in its own process, in one run.

    python benchmarks/forward_cpu.py [--threads 2] [--repeat 10] [--rounds 1] [--batch 1] [--size 416]
                                     [--cfg-dir ../shared/darknet/cfg] [models...]

Prints a table of median milliseconds per forward, each engine's peak resident memory (MB, the whole
process: Python, numpy and the engine's libraries included; a worker imports no other engine) and the
ratio darknetpy / the fastest other engine (< 1: faster; with --rounds, also the median over rounds of each
round's ratio, which a slow spell of a shared machine moves less); then each engine's load time. --size S runs every
model at S x S input. An engine whose package is not installed (onnxruntime, openvino) shows "-".
"""
import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

MODELS = ["darknet19", "darknet53", "yolov4-tiny", "yolov4"]


def warm_up(fn, seconds=1.0):
    """Call fn for this many seconds (at least once): first-call allocations, thread pools, and
    the first half second of a process, which runs slower here."""
    start = time.perf_counter()
    while True:
        fn()
        if time.perf_counter() - start >= seconds:
            return


def median_ms(fn, repeat):
    """Median ms of repeat calls after warm_up."""
    warm_up(fn)
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def random_batch(cfg, batch):
    """Random input for the cfg's [net] size, read from its text: a worker imports only its own
    engine, so that its peak memory is that engine's (darknetpy's cfg reader would load
    darknetpy into the other engines' workers; building a network for its shape would add a
    second set of weights to darknetpy's)."""
    options, section = {}, None
    for line in Path(cfg).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line.startswith("["):
            if section:
                break
            section = line
        elif section and "=" in line:
            key, value = line.split("=", 1)
            options[key.strip()] = value.strip()
    shape = (int(options.get("channels", 3)), int(options["height"]), int(options["width"]))
    return np.random.default_rng(0).random((batch,) + shape, dtype=np.float32)


def loaded(make):
    """make() and the ms it took (an engine's load: reading, preparing or compiling the model)."""
    t0 = time.perf_counter()
    made = make()
    return made, (time.perf_counter() - t0) * 1e3


def time_darknetpy(cfg, weights, threads, repeat, batch):
    import darknetpy as dn
    net, load = loaded(lambda: dn.Network(cfg, weights, batch=batch, threads=threads))
    x = random_batch(cfg, batch)
    return load, median_ms(lambda: net.predict(x), repeat)


def time_opencv(cfg, weights, threads, repeat, batch):
    import cv2
    cv2.setNumThreads(threads)
    net, load = loaded(lambda: cv2.dnn.readNetFromDarknet(str(cfg), str(weights)))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    blob = random_batch(cfg, batch)

    def forward():
        net.setInput(blob)
        return net.forward(net.getUnconnectedOutLayersNames())

    return load, median_ms(forward, repeat)


def time_onnxruntime(cfg, weights, threads, repeat, batch):
    import onnxruntime as ort
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    sess, load = loaded(lambda: ort.InferenceSession(str(onnx_path(weights)), opts, providers=["CPUExecutionProvider"]))
    x = random_batch(cfg, batch)
    return load, median_ms(lambda: sess.run(None, {"input": x}), repeat)


def time_openvino(cfg, weights, threads, repeat, batch):
    import openvino as ov
    core = ov.Core()
    # float32 like the others: on CPUs with bf16 support OpenVINO would otherwise compute in bf16
    core.set_property("CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    request, load = loaded(lambda: core.compile_model(str(onnx_path(weights)), "CPU").create_infer_request())
    x = random_batch(cfg, batch)
    return load, median_ms(lambda: request.infer({0: x}), repeat)


def onnx_path(weights):
    return Path(weights).with_suffix(".onnx")


ENGINES = {"darknetpy": time_darknetpy, "opencv": time_opencv, "onnxruntime": time_onnxruntime,
           "openvino": time_openvino}
HEADERS = {"darknetpy": "darknetpy ms", "opencv": "OpenCV ms", "onnxruntime": "ORT ms", "openvino": "OpenVINO ms"}


def run_isolated(engine, cfg, weights, threads, repeat, batch):
    """Time one engine in its own process (two thread pools in one process slow each other down):
    (median ms, peak RSS in MB, load ms), or None when its package (or, for the ONNX engines, the exported
    model) is missing."""
    if engine in ("onnxruntime", "openvino") and not onnx_path(weights).exists():
        return None
    out = subprocess.run([sys.executable, __file__, "--worker", engine, "--threads", str(threads), "--repeat",
                          str(repeat), "--batch", str(batch), str(cfg), str(weights)], capture_output=True,
                         text=True)
    if out.returncode and "ModuleNotFoundError" in out.stderr:
        return None
    if out.returncode:
        raise RuntimeError(f"{engine} on {cfg.name} failed:\n{out.stderr}")
    load, ms, rss = out.stdout.split()[-3:]
    return float(ms), float(rss), float(load)


def peak_rss_mb():
    """This process's peak resident memory (VmHWM; ru_maxrss would carry the parent's over exec)."""
    status = Path("/proc/self/status").read_text()
    return int(status.split("VmHWM:")[1].split()[0]) / 1024


def sized_cfg(cfg, size, tmp):
    """A copy of cfg whose [net] takes size x size images (NAME-SIZE.cfg in tmp: copies of one cfg at
    several sizes can share it)."""
    lines = [f"{line.split('=')[0].strip()}={size}" if line.split("=")[0].strip() in ("width", "height") else line
             for line in cfg.read_text().splitlines()]
    path = Path(tmp) / f"{cfg.stem}-{size}.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def rotated(engines, i):
    """The engines in round i's order: each round starts with the next one, so none always follows another."""
    i %= len(engines)
    return engines[i:] + engines[:i]


def round_ratio(times):
    """darknetpy's time over the fastest other engine's: {engine: (ms, ...) or None}, of one round or the best."""
    return times["darknetpy"][0] / min(v[0] for e, v in times.items() if e != "darknetpy" and v is not None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run the engines one after the other this many times; report each one's best round "
                             "(a slow spell of a shared machine only ever lengthens a round)")
    parser.add_argument("--size", type=int, help="run every model at SIZE x SIZE input")
    parser.add_argument("--cfg-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "darknet" / "cfg")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("models", nargs="*", default=MODELS)
    args = parser.parse_args()
    if args.worker:
        cfg, weights = args.models
        load, ms = ENGINES[args.worker](Path(cfg), Path(weights), args.threads, args.repeat, args.batch)
        print(load, ms, peak_rss_mb())
        return
    import cv2

    import darknetpy as dn
    from machine import describe
    from weights_gen import write_synthetic_weights
    print(describe())
    print(f"OpenCV {cv2.__version__}, darknetpy {dn.__version__}, "
          f"threads={args.threads}, batch {args.batch}, "
          f"median of {args.repeat} forwards, best of {args.rounds} interleaved rounds; peak RSS in MB")
    print(f"{'model':<14}{'input':>16}" + "".join(f"{h:>14}{'RSS':>6}" for h in HEADERS.values()) + f"{'ratio':>8}"
          + (f"{'per round':>10}" if args.rounds > 1 else ""))
    loads = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            cfg = args.cfg_dir / f"{name}.cfg"
            if args.size:
                cfg = sized_cfg(cfg, args.size, tmp)
            weights = Path(tmp) / f"{name}.weights"
            write_synthetic_weights(cfg, weights)
            with dn.Network(cfg, weights) as net:
                shape = net.input_shape
                try:
                    net.export_onnx(onnx_path(weights), batch=args.batch, decode=False)   # the same work as predict
                except dn.UnsupportedError:   # no onnx package: the ONNX engines show "-"
                    pass
            rounds = [{e: run_isolated(e, cfg, weights, args.threads, args.repeat, args.batch)
                       for e in rotated(list(ENGINES), i)}
                      for i in range(args.rounds)]
            runs = {e: None if rounds[0][e] is None else
                    (min(r[e][0] for r in rounds), max(r[e][1] for r in rounds),
                     statistics.median(r[e][2] for r in rounds)) for e in ENGINES}
            cells = "".join(f"{v[0]:>14.1f}{v[1]:>6.0f}" if v is not None else f"{'-':>14}{'-':>6}"
                            for v in runs.values())
            per_round = f"{statistics.median(map(round_ratio, rounds)):>10.2f}" if args.rounds > 1 else ""
            print(f"{name:<14}{'x'.join(map(str, shape)):>16}{cells}{round_ratio(runs):>8.2f}{per_round}")
            loads.append(f"{name:<30}" + "".join(f"{v[2]:>14.0f}" if v is not None else f"{'-':>14}"
                                                  for v in runs.values()))
    print(f"\nload ms (cfg + weights, or the ONNX model compiled, up to the first forward)\n{'model':<30}"
          + "".join(f"{h.split()[0]:>14}" for h in HEADERS.values()))
    print("\n".join(loads))


if __name__ == "__main__":
    main()
