"""Per-layer CPU forward time of a network's convolutions: each [convolutional] layer is cut
out into a one-layer cfg (same input shape, options and activation) and timed alone, in
darknetpy and in OpenVINO on darknetpy's ONNX export of it, each engine in its own process.

    python benchmarks/layer_profile.py [--threads 2] [--repeat 20] [--size S]
                                       [--cfg-dir ../shared/darknet/cfg] model

Prints one row per distinct layer shape (count x median ms each) and the sums; the sums
leave out everything but convolutions (pooling, route, shortcut, the per-call overhead).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import darknetpy as dn
from darknetpy.cfgfile import read_cfg
from forward_cpu import median_ms, sized_cfg
from weights_gen import write_synthetic_weights


def time_darknetpy(cfg, threads, repeat):
    with dn.Network(cfg, cfg.with_suffix(".weights"), batch=1, threads=threads) as net:
        x = np.random.default_rng(0).random((1,) + net.input_shape, dtype=np.float32)
        return median_ms(lambda: net.predict(x), repeat)


def time_openvino(cfg, threads, repeat):
    import openvino as ov
    core = ov.Core()
    core.set_property("CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32"})
    model = core.compile_model(str(cfg.with_suffix(".onnx")), "CPU")
    request = model.create_infer_request()
    x = np.random.default_rng(0).random(tuple(model.input(0).shape), dtype=np.float32)
    return median_ms(lambda: request.infer({0: x}), repeat)


ENGINES = {"darknetpy": time_darknetpy, "openvino": time_openvino}


def layer_cfgs(cfg, size, tmp):
    """One-layer cfgs of cfg's distinct convolutions: [(path, key, count)]."""
    if size:
        cfg = sized_cfg(cfg, size, tmp)
    sections = read_cfg(cfg)
    with dn.Network(cfg, batch=1, fuse=False) as net:
        layers = net.layers
    found = {}
    convs = [s for s in sections[1:] if s.name in ("convolutional", "conv")]
    for layer, section in zip([l for l in layers if l.type == "convolutional"], convs):
        c, h, w = layer.input_shape
        opts = "".join(f"{k}={v}\n" for k, v, _ in section.options)
        key = f"{layer.summary.split('->')[0].strip()} -> {layer.output_shape[0]} {section.get('activation')}"
        key = " ".join(key.split())
        if key in found:
            found[key][2] += 1
            continue
        path = Path(tmp) / f"l{layer.index}.cfg"
        path.write_text(f"[net]\nbatch=1\nwidth={w}\nheight={h}\nchannels={c}\n[convolutional]\n{opts}")
        write_synthetic_weights(path, path.with_suffix(".weights"))
        with dn.Network(path, path.with_suffix(".weights")) as one:
            one.export_onnx(path.with_suffix(".onnx"), batch=1, decode=False)
        found[key] = [path, key, 1]
    return list(found.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--size", type=int)
    parser.add_argument("--cfg-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "darknet" / "cfg")
    parser.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    parser.add_argument("model")
    args = parser.parse_args()
    if args.worker:
        cfgs = json.loads(args.model)
        print(json.dumps([ENGINES[args.worker](Path(c), args.threads, args.repeat) for c in cfgs]))
        return
    with tempfile.TemporaryDirectory() as tmp:
        rows = layer_cfgs(args.cfg_dir / f"{args.model}.cfg", args.size, tmp)
        paths = json.dumps([str(r[0]) for r in rows])
        times = {}
        for engine in ENGINES:
            out = subprocess.run([sys.executable, __file__, "--worker", engine, "--threads", str(args.threads),
                                  "--repeat", str(args.repeat), paths], capture_output=True, text=True, check=True)
            times[engine] = json.loads(out.stdout.split("\n")[-2])
    print(f"{args.model}: ms per layer (median of {args.repeat}), threads={args.threads}")
    print(f"{'layer':<62}{'n':>3}{'ours':>9}{'OpenVINO':>9}{'ratio':>7}")
    sums = dict.fromkeys(ENGINES, 0.0)
    for i, (_, key, count) in enumerate(rows):
        ours, ov = times["darknetpy"][i], times["openvino"][i]
        sums["darknetpy"] += count * ours
        sums["openvino"] += count * ov
        print(f"{key:<62}{count:>3}{ours:>9.3f}{ov:>9.3f}{ours / ov:>7.2f}")
    print(f"{'sum':<65}{sums['darknetpy']:>9.2f}{sums['openvino']:>9.2f}{sums['darknetpy'] / sums['openvino']:>7.2f}")


if __name__ == "__main__":
    main()
