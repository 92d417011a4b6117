"""Where a CPU forward's time goes, inside the whole network: each layer's mean wall ms per
forward (Network.time_layers), grouped by kind and shape, and the slowest layers. Synthetic
weights. --openvino adds OpenVINO's own per-node times (its PERF_COUNT profile, in its own
process) on the ONNX export, summed into the same groups: where a peer is faster, layer kind by
layer kind (compare whole forwards with forward_cpu.py). OpenVINO fuses activations and adds
into its convolutions, and reports its layout conversions apart ("Reorder").

    python benchmarks/layer_times.py [--threads 2] [--repeat 20] [--batch 1] [--size S] [--top 12]
                                     [--rounds 1] [--openvino] [--cfg-dir ../shared/darknet/cfg] model
"""
import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import darknetpy as dn
from forward_cpu import sized_cfg, warm_up
from machine import describe
from weights_gen import write_synthetic_weights


def conv_group(size, stride, h, w):
    return f"convolutional {size}x{size}/{stride} in {h}x{w}"


def group_of(net, layer):
    """'convolutional 3x3/2 in 208x208', 'route', ...: the rows the times are summed in."""
    if layer.type != "convolutional":
        return layer.type
    attrs = net.layer_attrs(layer.index)
    _, h, w = layer.input_shape
    return conv_group(attrs["size"], attrs["stride_x"], h, w)


def openvino_groups(onnx_path, threads, repeat):
    """OpenVINO's mean ms per forward of each group (convolutions by their ONNX output, the rest
    by OpenVINO's node type), in this process: run it as a worker."""
    import numpy as np
    import onnx
    import openvino as ov

    model = onnx.shape_inference.infer_shapes(onnx.load(onnx_path))
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in list(model.graph.value_info) + list(model.graph.input)}
    groups = {}
    for node in model.graph.node:
        if node.op_type == "Conv":
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            _, _, h, w = shapes[node.input[0]]
            groups[node.output[0]] = conv_group(attrs["kernel_shape"][0], attrs["strides"][0], h, w)
    core = ov.Core()
    core.set_property("CPU", {"INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32",
                              "PERF_COUNT": True})
    request = core.compile_model(str(onnx_path), "CPU").create_infer_request()
    x = np.random.default_rng(0).random(shapes[model.graph.input[0].name], dtype=np.float32)
    warm_up(lambda: request.infer({0: x}))
    ms = collections.defaultdict(float)
    for _ in range(repeat):
        request.infer({0: x})
        for node in request.profiling_info:
            group = groups.get(node.node_name.split("/")[0], node.node_type)
            ms[group] += node.real_time.total_seconds() * 1e3 / repeat
    return ms


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--rounds", type=int, default=1, help="report each layer's (and peer group's) best round")
    parser.add_argument("--openvino", action="store_true", help="OpenVINO's time per group beside ours")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--cfg-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "darknet" / "cfg")
    parser.add_argument("model")
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(openvino_groups(args.worker, args.threads, args.repeat)))
        return
    with tempfile.TemporaryDirectory() as tmp:
        cfg = args.cfg_dir / f"{args.model}.cfg"
        if args.size:
            cfg = sized_cfg(cfg, args.size, tmp)
        weights = Path(tmp) / "synthetic.weights"
        write_synthetic_weights(cfg, weights)
        onnx_path = Path(tmp) / "synthetic.onnx"
        with dn.Network(cfg, weights, batch=args.batch, threads=args.threads) as net:
            layers = net.layers
            names = [group_of(net, layer) for layer in layers]
            if args.openvino:
                net.export_onnx(onnx_path, batch=args.batch, decode=False)
            x = np.random.default_rng(0).random((args.batch,) + net.input_shape, dtype=np.float32)
            warm_up(lambda: net.predict(x))
            walls, rounds, peers = [], [], []
            for _ in range(args.rounds):   # interleaved with the peer's: the machine's speed varies
                net.time_layers()
                start = time.perf_counter()
                for _ in range(args.repeat):
                    net.predict(x)
                walls.append((time.perf_counter() - start) * 1e3 / args.repeat)
                rounds.append(net.layer_times())
                if args.openvino:
                    out = subprocess.run([sys.executable, __file__, "--worker", str(onnx_path), "--threads",
                                          str(args.threads), "--repeat", str(args.repeat), args.model],
                                         capture_output=True, text=True, check=True)
                    peers.append(json.loads(out.stdout))
    wall, ms = min(walls), np.min(rounds, axis=0)
    peer = {name: min(p.get(name, 0.0) for p in peers) for name in set().union(*peers)}
    groups, counts = collections.defaultdict(float), collections.Counter()
    for name, t in zip(names, ms):
        groups[name] += t
        counts[name] += 1
    print(describe())
    print(f"{args.model}: {wall:.2f} ms per forward (batch {args.batch}, {args.threads} threads, mean of "
          f"{args.repeat}, best of {args.rounds} rounds); layers {ms.sum():.2f} ms")
    print(f"{'group':<40}{'n':>4}{'ms':>9}{'share':>7}" + (f"{'OpenVINO':>10}{'ratio':>7}" if peer else ""))
    for name, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        theirs = peer.pop(name, 0.0)
        versus = f"{theirs:>10.2f}{t / theirs if theirs else float('nan'):>7.2f}" if args.openvino else ""
        print(f"{name:<40}{counts[name]:>4}{t:>9.2f}{t / ms.sum():>7.1%}{versus}")
    for name, theirs in sorted(peer.items(), key=lambda kv: -kv[1]):
        if theirs >= 0.01:
            print(f"{'OpenVINO ' + name:<40}{'':>4}{'':>9}{'':>7}{theirs:>10.2f}")
    print(f"\nslowest {args.top} layers")
    for i in np.argsort(-ms)[:args.top]:
        print(f"{ms[i]:>8.2f}  {i:>4}  {' '.join(layers[i].summary.split())}")


if __name__ == "__main__":
    main()
