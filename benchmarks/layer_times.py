"""Where a CPU forward's time goes, inside the whole network: each layer's mean wall ms per
forward (Network.time_layers), grouped by kind and shape, and the slowest layers. Synthetic
weights; no peer (compare engines with forward_cpu.py, single layers with layer_profile.py).

    python benchmarks/layer_times.py [--threads 2] [--repeat 20] [--batch 1] [--size S] [--top 12]
                                     [--cfg-dir ../shared/darknet/cfg] model
"""
import argparse
import collections
import tempfile
import time
from pathlib import Path

import numpy as np

import darknetpy as dn
from forward_cpu import sized_cfg
from weights_gen import write_synthetic_weights


def group_of(net, layer):
    """'convolutional 3x3/2 in 208x208', 'route', ...: the rows the times are summed in."""
    if layer.type != "convolutional":
        return layer.type
    attrs = net.layer_attrs(layer.index)
    _, h, w = layer.input_shape
    return f"convolutional {attrs['size']}x{attrs['size']}/{attrs['stride_x']} in {h}x{w}"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int)
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--cfg-dir", type=Path,
                        default=Path(__file__).resolve().parents[2] / "shared" / "darknet" / "cfg")
    parser.add_argument("model")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = args.cfg_dir / f"{args.model}.cfg"
        if args.size:
            cfg = sized_cfg(cfg, args.size, tmp)
        weights = Path(tmp) / "synthetic.weights"
        write_synthetic_weights(cfg, weights)
        with dn.Network(cfg, weights, batch=args.batch, threads=args.threads) as net:
            x = np.random.default_rng(0).random((args.batch,) + net.input_shape, dtype=np.float32)
            start = time.perf_counter()
            while time.perf_counter() - start < 1.0:  # warm-up, as forward_cpu.py
                net.predict(x)
            net.time_layers()
            start = time.perf_counter()
            for _ in range(args.repeat):
                net.predict(x)
            wall = (time.perf_counter() - start) * 1e3 / args.repeat
            ms = net.layer_times()
            layers = net.layers
            names = [group_of(net, layer) for layer in layers]
    groups, counts = collections.defaultdict(float), collections.Counter()
    for name, t in zip(names, ms):
        groups[name] += t
        counts[name] += 1
    print(f"{args.model}: {wall:.2f} ms per forward (batch {args.batch}, {args.threads} threads, mean of "
          f"{args.repeat}); layers {ms.sum():.2f} ms")
    print(f"{'group':<40}{'n':>4}{'ms':>9}{'share':>7}")
    for name, t in sorted(groups.items(), key=lambda kv: -kv[1]):
        print(f"{name:<40}{counts[name]:>4}{t:>9.2f}{t / ms.sum():>7.1%}")
    print(f"\nslowest {args.top} layers")
    for i in np.argsort(-ms)[:args.top]:
        print(f"{ms[i]:>8.2f}  {i:>4}  {' '.join(layers[i].summary.split())}")


if __name__ == "__main__":
    main()
