"""CPU training throughput: images/s of ``Network.train_step`` next to PyTorch (CPU) training
the same network (conv + BN + leaky, maxpool, global avgpool, softmax; SGD with momentum and
weight decay) at the same batch and thread count, in one run.

    python benchmarks/train_cpu.py [--threads 2] [--repeat 5] [--cfg-dir ../shared/darknet/cfg]

Networks: upstream's darknet reference classifier (``cfg/darknet.cfg``, 224x224, 1000 classes)
at batch 16, and ``benchmarks/small32.cfg`` (32x32, 10 classes) at batch 64. Each engine runs in
its own process (two thread pools in one process slow each other down). Prints a table and the
ratio darknetpy / PyTorch (> 1: darknetpy is faster). Needs ``pip install torch``.
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
NETWORKS = {  # name: (cfg, batch)
    "darknet-ref 224": ("{cfg_dir}/darknet.cfg", 16),
    "small 32x32": (str(HERE / "small32.cfg"), 64),
}


def with_batch(cfg: Path, batch: int, out_dir: Path) -> Path:
    """A copy of ``cfg`` with batch=<batch>, subdivisions=1 (other keys untouched)."""
    lines = []
    for line in cfg.read_text().splitlines():
        key = line.split("=")[0].strip()
        if key == "batch":
            line = f"batch={batch}"
        elif key == "subdivisions":
            line = "subdivisions=1"
        lines.append(line)
    out = out_dir / cfg.name
    out.write_text("\n".join(lines) + "\n")
    return out


def import_darknetpy():
    try:
        import darknetpy as dn
    except ImportError:  # run from a source checkout built in place
        sys.path.insert(0, str(HERE.parent))
        import darknetpy as dn
    return dn


def sections(cfg: Path):
    """(name, {key: value}) per section, read by darknetpy's cfg reader (first value of a key wins)."""
    import_darknetpy()
    from darknetpy.cfgfile import read_cfg

    return [(sec.name, {k: v for k, v, _ in reversed(sec.options)}) for sec in read_cfg(cfg)]


def median_s(step, repeat):
    step()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_darknetpy(cfg, threads, repeat):
    dn = import_darknetpy()
    net = dn.Network(cfg, batch=None, threads=threads)
    rng = np.random.default_rng(0)
    n = net.batch * net.subdivisions
    x = rng.random((n,) + net.input_shape, dtype=np.float32)
    y = np.eye(net.outputs, dtype=np.float32)[rng.integers(0, net.outputs, n)]
    return n / median_s(lambda: net.train_step(x, y), repeat)


def torch_model(cfg):
    import torch.nn as nn

    secs = sections(cfg)
    net = secs[0][1]
    c = int(net["channels"])
    layers = []
    for kind, o in secs[1:]:
        if kind in ("convolutional", "conv"):
            size, filters = int(o.get("size", 1)), int(o["filters"])
            pad = size // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
            bn = int(o.get("batch_normalize", 0))
            layers.append(nn.Conv2d(c, filters, size, int(o.get("stride", 1)), pad, bias=not bn))
            if bn:
                layers.append(nn.BatchNorm2d(filters, eps=1e-5, momentum=0.01))
            act = o.get("activation", "logistic")
            if act == "leaky":
                layers.append(nn.LeakyReLU(0.1))
            elif act != "linear":
                raise ValueError(f"activation {act} not mapped")
            c = filters
        elif kind in ("maxpool", "max"):
            size, stride = int(o.get("size", o.get("stride", 1))), int(o.get("stride", 1))
            padding = int(o.get("padding", size - 1))
            # darknet pads `padding` in total, floor(padding/2) before: pad right/bottom explicitly
            layers.append(nn.ZeroPad2d((padding // 2, padding - padding // 2) * 2) if padding else nn.Identity())
            layers.append(nn.MaxPool2d(size, stride))
        elif kind in ("avgpool", "avg"):
            layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        elif kind in ("softmax", "cost"):
            pass  # folded into the loss
        else:
            raise ValueError(f"section [{kind}] not mapped")
    return nn.Sequential(*layers), net


def bench_torch(cfg, threads, repeat):
    import torch

    torch.set_num_threads(threads)
    model, net = torch_model(cfg)
    n = int(net["batch"])
    x = torch.rand(n, int(net["channels"]), int(net["height"]), int(net["width"]))
    classes = model(x[:1]).shape[1]
    y = torch.randint(0, classes, (n,))
    opt = torch.optim.SGD(model.parameters(), lr=float(net.get("learning_rate", 0.001)),
                          momentum=float(net.get("momentum", 0.9)), weight_decay=float(net.get("decay", 0)))
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    return n / median_s(step, repeat)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--cfg-dir", default=str(HERE.parents[1] / "shared" / "darknet" / "cfg"))
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:  # child process: one measurement, JSON on stdout
        fn = bench_darknetpy if args.engine == "darknetpy" else bench_torch
        print(json.dumps(fn(Path(args.cfg), args.threads, args.repeat)))
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, (cfg, batch) in NETWORKS.items():
            cfg = with_batch(Path(cfg.format(cfg_dir=args.cfg_dir)), batch, Path(tmp))
            rates = {}
            for engine in ("darknetpy", "torch"):
                out = subprocess.run([sys.executable, __file__, "--engine", engine, "--cfg", str(cfg),
                                      "--threads", str(args.threads), "--repeat", str(args.repeat)],
                                     check=True, capture_output=True, text=True).stdout
                rates[engine] = json.loads(out.strip().splitlines()[-1])
            rows.append((name, batch, rates["darknetpy"], rates["torch"]))
    import torch

    print(f"train_step images/s, CPU, {args.threads} threads, median of {args.repeat} iterations "
          f"(PyTorch {torch.__version__})")
    print(f"{'network':<18}{'batch':>6}{'darknetpy':>12}{'pytorch':>12}{'ratio':>8}")
    for name, batch, ours, theirs in rows:
        print(f"{name:<18}{batch:>6}{ours:>12.1f}{theirs:>12.1f}{ours / theirs:>8.2f}")


if __name__ == "__main__":
    main()
