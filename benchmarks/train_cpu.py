"""CPU training throughput: images/s of ``Network.train_step`` next to PyTorch (CPU) training
the same layers (conv + BN + activation, maxpool, route, upsample, global avgpool, softmax;
SGD with momentum, weight decay on the weights only, as darknet) at the same batch and thread
count, in one run, with the time split per phase; and the images/s of the whole
``darknetpy classifier train`` loop (loading included) on generated JPEGs.

    python benchmarks/train_cpu.py [--threads 2] [--repeat 5] [--rounds 1] [--nets small,darknet19,yolov4-tiny]
                                   [--cfg-dir ../shared/darknet/cfg] [--no-loop] [--before CHECKOUT]

Networks: ``benchmarks/small32.cfg`` (32x32, 10 classes) at batch 64, upstream's darknet19
(224x224, 1000 classes) at batch 16 and yolov4-tiny (416x416) at batch 8; darknetpy trains the
detector with its [yolo] loss on random boxes, PyTorch's column has no YOLO loss (its heads get
a sum-of-squares loss), so its figure is an upper bound. Each engine runs in its own process (two
thread pools in one process slow each other down); PyTorch's column is skipped when torch is not
installed. darknetpy is this checkout's in-place build when there is one, else the installed
package; ``--before`` adds a row for another checkout built in place (e.g. an earlier commit).

Phases (ms per iteration) are timed inside the step (darknetpy's by the engine). ``loop`` is the images/s of ``train_classifier`` on generated
images (decode, augmentation and batch assembly included; classifiers only; the median interval
between iterations) and ``loop/step`` its ratio to ``train_step`` alone timed just before it in the
same process; ``load`` is the loop's time per iteration beyond that step.
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

from machine import describe

HERE = Path(__file__).resolve().parent
NETWORKS = {  # name: (cfg, batch, is a classifier)
    "small": ("small 32x32", str(HERE / "small32.cfg"), 64, True),
    "darknet19": ("darknet19 224", "{cfg_dir}/darknet19.cfg", 16, True),
    "yolov4-tiny": ("yolov4-tiny 416", "{cfg_dir}/yolov4-tiny.cfg", 8, False),
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


def built_in_place(checkout: Path) -> bool:
    return any((checkout / "darknetpy").glob("_libdarknet*.so"))


def import_darknetpy(checkout=None):
    """``checkout``'s or this checkout's in-place build if there is one, else the installed package."""
    if "darknetpy" not in sys.modules:
        checkout = checkout or (HERE.parent if built_in_place(HERE.parent) else None)
        if checkout:
            sys.path.insert(0, str(Path(checkout).resolve()))
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


# --------------------------------------------------------------------------- darknetpy

def random_truth(net, n, rng):
    if net.is_detector:  # 1-4 boxes per image: class, x, y, w, h (normalised)
        classes = net.layer_attrs(len(net.layers) - 1)["classes"]
        return [np.column_stack([rng.integers(0, classes, k), rng.uniform(.2, .8, (k, 2)), rng.uniform(.05, .4, (k, 2))])
                .astype(np.float32) for k in rng.integers(1, 5, n)]
    return np.eye(net.outputs, dtype=np.float32)[rng.integers(0, net.outputs, n)]


def bench_darknetpy(cfg, threads, repeat):
    dn = import_darknetpy()
    net = dn.Network(cfg, batch=None, threads=threads)
    rng = np.random.default_rng(0)
    n = net.batch
    x = rng.random((n,) + net.input_shape, dtype=np.float32)
    y = random_truth(net, n, rng)
    phases = []

    def step():
        net.train_step(x, y)
        if hasattr(net._handle, "phase_times"):  # builds before it have no phase split
            phases.append(net._handle.phase_times())

    rate = n / median_s(step, repeat)
    fwd, bwd, upd = (statistics.median(p[k] for p in phases[1:]) * 1e3 if phases else float("nan")
                     for k in range(3))
    return {"step": rate, "forward": fwd, "backward": bwd, "update": upd}


def make_dataset(root: Path, classes: int, size: tuple, count: int) -> Path:
    """``count`` random JPEGs of ``size`` (w, h) in ``classes`` classes and their .data file."""
    import cv2

    rng = np.random.default_rng(1)
    labels = [f"lab{i:04d}" for i in range(classes)]
    paths = []
    for i in range(count):
        path = root / f"img{i}_{labels[i % classes]}.jpg"
        base = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)
        cv2.imwrite(str(path), cv2.resize(base, size, interpolation=cv2.INTER_CUBIC))
        paths.append(str(path))
    (root / "labels.txt").write_text("\n".join(labels) + "\n")
    (root / "train.txt").write_text("\n".join(paths) + "\n")
    data = root / "bench.data"
    data.write_text(f"classes={classes}\ntrain={root}/train.txt\nlabels={root}/labels.txt\nbackup={root}/backup\n")
    return data


def bench_loop(cfg, threads, repeat):
    """images/s of train_classifier (median interval between iterations) and of train_step alone
    on random data, in the same process just before and just after it (the mean of the two, so
    that a drift of the machine's speed during the run does not favour either)."""
    dn = import_darknetpy()
    with dn.Network(cfg, batch=None, threads=threads) as net:
        w, h, classes, batch = net.width, net.height, net.outputs, net.batch
        x = np.random.default_rng(0).random((batch,) + net.input_shape, dtype=np.float32)
        y = random_truth(net, batch, np.random.default_rng(0))
        step_before = median_s(lambda: net.train_step(x, y), 2 * repeat)
        with tempfile.TemporaryDirectory() as tmp:
            data = make_dataset(Path(tmp), classes, (w * 5 // 4, h * 5 // 4), 256)
            stamps = []
            dn.train_classifier(data, cfg, clear=True, max_batches=4 * repeat + 1, threads=threads, seed=0,
                                progress=False, callbacks=[lambda p: stamps.append(time.perf_counter())])
        step_after = median_s(lambda: net.train_step(x, y), 2 * repeat)
    return {"loop": batch / statistics.median(np.diff(stamps)), "step": 2 * batch / (step_before + step_after)}


# --------------------------------------------------------------------------- PyTorch

def torch_model(cfg):
    """The cfg's layers as a torch module: each layer's output kept for [route]/[shortcut]."""
    import torch
    import torch.nn as nn

    secs = sections(cfg)
    net = secs[0][1]
    shapes = []  # (c, h, w) per layer
    c, h, w = int(net["channels"]), int(net["height"]), int(net["width"])
    mods, wiring = nn.ModuleList(), []

    def act_module(name):
        if name == "leaky":
            return nn.LeakyReLU(0.1)
        if name == "linear":
            return nn.Identity()
        if name == "mish":
            return nn.Mish()
        raise ValueError(f"activation {name} not mapped")

    def index(i, rel):
        return i + rel if rel < 0 else rel

    for i, (kind, o) in enumerate(secs[1:]):
        src = None  # None: the previous layer
        if kind in ("convolutional", "conv"):
            size, filters, stride = int(o.get("size", 1)), int(o["filters"]), int(o.get("stride", 1))
            pad = size // 2 if int(o.get("pad", 0)) else int(o.get("padding", 0))
            bn = int(o.get("batch_normalize", 0))
            layers = [nn.Conv2d(c, filters, size, stride, pad, bias=not bn)]
            if bn:
                layers.append(nn.BatchNorm2d(filters, eps=1e-5, momentum=0.01))
            layers.append(act_module(o.get("activation", "logistic")))
            mod = nn.Sequential(*layers)
            c, h, w = filters, (h + 2 * pad - size) // stride + 1, (w + 2 * pad - size) // stride + 1
        elif kind in ("maxpool", "max"):
            size = int(o.get("size", o.get("stride", 1)))
            stride = int(o.get("stride", 1))
            padding = int(o.get("padding", size - 1))
            out_h, out_w = (h + padding - size) // stride + 1, (w + padding - size) // stride + 1
            layers = []
            if (out_h, out_w) != ((h - size) // stride + 1, (w - size) // stride + 1):
                # darknet pads `padding` in total, floor(padding/2) before
                layers.append(nn.ZeroPad2d((padding // 2, padding - padding // 2) * 2))
            mod = nn.Sequential(*layers, nn.MaxPool2d(size, stride))
            h, w = out_h, out_w
        elif kind in ("avgpool", "avg"):
            mod = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
            h = w = 1
        elif kind == "route":
            src = [index(i, int(v)) for v in o["layers"].split(",")]
            groups, gid = int(o.get("groups", 1)), int(o.get("group_id", 0))

            class Route(nn.Module):
                def forward(self, *xs, groups=groups, gid=gid):
                    x = torch.cat(xs, 1) if len(xs) > 1 else xs[0]
                    return x.chunk(groups, 1)[gid] if groups > 1 else x

            mod = Route()
            c = sum(shapes[j][0] for j in src) // groups
            h, w = shapes[src[0]][1:]
        elif kind == "upsample":
            s = int(o.get("stride", 2))
            mod = nn.Upsample(scale_factor=s, mode="nearest")
            h, w = h * s, w * s
        elif kind == "shortcut":
            src = [i - 1, index(i, int(o["from"]))]

            class Add(nn.Module):
                def forward(self, a, b):
                    return a + b

            mod = Add()
            if o.get("activation", "linear") != "linear":
                raise ValueError("[shortcut] activation not mapped")
        elif kind in ("softmax", "cost", "yolo"):
            mod = nn.Identity()  # the loss is computed outside the layers
        else:
            raise ValueError(f"section [{kind}] not mapped")
        mods.append(mod)
        wiring.append((kind, src))
        shapes.append((c, h, w))

    class Model(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = mods

        def forward(self, x):
            outs, heads = [], []
            for (kind, src), mod in zip(wiring, self.layers):
                x = mod(*[outs[j] for j in src]) if src is not None else mod(x)
                outs.append(x)
                if kind == "yolo":
                    heads.append(x)
            return heads or x

    return Model(), net


def bench_torch(cfg, threads, repeat):
    import torch

    torch.set_num_threads(threads)
    model, net = torch_model(cfg)
    n = int(net["batch"])
    x = torch.rand(n, int(net["channels"]), int(net["height"]), int(net["width"]))
    out = model(x[:1])
    detector = isinstance(out, list)
    y = None if detector else torch.randint(0, out.shape[1], (n,))
    decay = [p for name, p in model.named_parameters() if name.endswith("0.weight")]  # the conv weights
    rest = [p for name, p in model.named_parameters() if not name.endswith("0.weight")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": float(net.get("decay", 0))},
                           {"params": rest, "weight_decay": 0.0}],
                          lr=float(net.get("learning_rate", 0.001)), momentum=float(net.get("momentum", 0.9)))
    ce = torch.nn.CrossEntropyLoss()
    phases = []

    def step():
        t0 = time.perf_counter()
        out = model(x)
        loss = sum(o.square().mean() for o in out) if detector else ce(out, y)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        phases.append((t1 - t0, t2 - t1, time.perf_counter() - t2))

    rate = n / median_s(step, repeat)
    fwd, bwd, upd = (statistics.median(p[k] for p in phases[1:]) * 1e3 for k in range(3))
    return {"step": rate, "forward": fwd, "backward": bwd, "update": upd, "version": torch.__version__}


# --------------------------------------------------------------------------- driver

def run_child(engine, cfg, args, checkout=None):
    cmd = [sys.executable, __file__, "--engine", engine, "--cfg", str(cfg), "--threads", str(args.threads),
           "--repeat", str(args.repeat)]
    proc = subprocess.run(cmd + (["--checkout", str(checkout)] if checkout else []), capture_output=True, text=True)
    if proc.returncode:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{engine} on {cfg.name} failed")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def median_run(results):
    """The run with the median images/s (its phases with it), None without runs."""
    return sorted(results, key=lambda r: r["step"])[len(results) // 2] if results else None


def have_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--nets", default="small,darknet19,yolov4-tiny", help="comma-separated: " + ",".join(NETWORKS))
    ap.add_argument("--cfg-dir", default=str(HERE.parents[1] / "shared" / "darknet" / "cfg"))
    ap.add_argument("--rounds", type=int, default=1, help="runs of each engine, alternating; the median is shown")
    ap.add_argument("--no-loop", action="store_true", help="skip the training-loop measurement")
    ap.add_argument("--before", help="another checkout, built in place, timed as a row of its own")
    ap.add_argument("--checkout", help=argparse.SUPPRESS)
    ap.add_argument("--engine", help=argparse.SUPPRESS)
    ap.add_argument("--cfg", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.engine:  # child process: one measurement, JSON on stdout
        import_darknetpy(args.checkout)
        fn = {"darknetpy": bench_darknetpy, "torch": bench_torch, "loop": bench_loop}[args.engine]
        print(json.dumps(fn(Path(args.cfg), args.threads, args.repeat)))
        return
    torch_ok = have_torch()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for key in args.nets.split(","):
            name, cfg, batch, classifier = NETWORKS[key]
            cfg = with_batch(Path(cfg.format(cfg_dir=args.cfg_dir)), batch, Path(tmp))
            runs = {"ours": [], "before": [], "theirs": []}
            for _ in range(args.rounds):  # engines alternate, so that drift of the machine hits each alike
                runs["ours"].append(run_child("darknetpy", cfg, args))
                if args.before:
                    runs["before"].append(run_child("darknetpy", cfg, args, args.before))
                if torch_ok:
                    runs["theirs"].append(run_child("torch", cfg, args))
            ours, before, theirs = (median_run(runs[k]) for k in ("ours", "before", "theirs"))
            loop = run_child("loop", cfg, args) if classifier and not args.no_loop else None
            rows.append((name, batch, ours, before, theirs, loop))
    version = next((r[4]["version"] for r in rows if r[4]), "not installed")
    print(describe())
    print(f"train step, CPU, {args.threads} threads, median of {args.repeat} iterations, median of {args.rounds} "
          f"alternating runs (PyTorch {version}); "
          "phases in ms per iteration; ratio: img/s / PyTorch's")
    print(f"{'network':<16}{'batch':>6}{'engine':>11}{'img/s':>9}{'forward':>9}{'backward':>9}{'update':>8}"
          f"{'ratio':>7}{'loop':>8}{'load':>7}{'loop/step':>10}")
    for name, batch, ours, before, theirs, loop in rows:
        for engine, r in (("darknetpy", ours), ("before", before), ("pytorch", theirs)):
            if r is None:
                continue
            ratio = f"{r['step'] / theirs['step']:>7.2f}" if theirs and engine != "pytorch" else " " * 7
            extra = ""
            if loop and engine == "darknetpy":
                load = (batch / loop["loop"] - batch / loop["step"]) * 1e3
                extra = f"{loop['loop']:>8.1f}{load:>7.1f}{loop['loop'] / loop['step']:>10.2f}"
            label = "pytorch*" if engine == "pytorch" and name.startswith("yolo") else engine
            print(f"{name:<16}{batch:>6}{label:>11}{r['step']:>9.1f}{r['forward']:>9.1f}{r['backward']:>9.1f}"
                  f"{r['update']:>8.1f}{ratio}{extra}")
    if any(name.startswith("yolo") for name, *_ in rows):
        print("pytorch*: without the YOLO loss (a sum of squares of the heads instead)")


if __name__ == "__main__":
    main()
