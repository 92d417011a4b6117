"""GPU training throughput: images/s of ``Network.train_step`` on "cuda" (with cuDNN, and with
DARKNETPY_CUDNN=0: im2col + cuBLAS) next to PyTorch training the same layers on the same GPU
(cuDNN with benchmark mode, float32; and AMP with channels-last), same batch, in one run.

    python benchmarks/train_gpu.py [--repeat 10] [--nets small,darknet19,yolov4-tiny] [--cfg-dir DIR]

Networks and their PyTorch twins are train_cpu.py's (small32 at batch 64, darknet19 224 at batch
32, yolov4-tiny 416 at batch 16; cfgs from --cfg-dir when there). darknetpy trains the detector
with its [yolo] loss on random boxes; PyTorch's heads get a sum of squares instead (pytorch*), so
its figure is an upper bound. Each engine runs in its own process; the PyTorch rows are skipped
when torch has no CUDA device.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from train_cpu import import_darknetpy, median_s, random_truth, torch_model, with_batch  # noqa: E402

NETWORKS = {  # name: (label, cfg, batch)
    "small": ("small 32x32", str(HERE / "small32.cfg"), 64),
    "darknet19": ("darknet19 224", "{cfg_dir}/darknet19.cfg", 32),
    "yolov4-tiny": ("yolov4-tiny 416", "{cfg_dir}/yolov4-tiny.cfg", 16),
}
ENGINES = {  # row: (engine, environment)
    "darknetpy cudnn": ("darknetpy", {}),
    "darknetpy im2col": ("darknetpy", {"DARKNETPY_CUDNN": "0"}),
    "pytorch fp32": ("torch", {}),
    "pytorch amp+cl": ("torch-amp", {}),
}


def bench_darknetpy(cfg, repeat):
    dn = import_darknetpy()
    net = dn.Network(cfg, batch=None, device="cuda")
    rng = np.random.default_rng(0)
    x = rng.random((net.batch,) + net.input_shape, dtype=np.float32)
    y = random_truth(net, net.batch, rng)
    rate = net.batch / median_s(lambda: net.train_step(x, y), repeat)  # returns once the loss is read back
    return {"step": rate, "cudnn": dn.cuda.libraries()["cudnn"] is None}


def bench_torch(cfg, repeat, amp):
    import torch

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # float32 rows stay float32
    model, net = torch_model(cfg)
    model = model.cuda()
    n = int(net["batch"])
    x = torch.rand(n, int(net["channels"]), int(net["height"]), int(net["width"]), device="cuda")
    if amp:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    out = model(x[:1])
    detector = isinstance(out, list)
    y = None if detector else torch.randint(0, out.shape[1], (n,), device="cuda")
    decay = [p for name, p in model.named_parameters() if name.endswith("0.weight")]
    rest = [p for name, p in model.named_parameters() if not name.endswith("0.weight")]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": float(net.get("decay", 0))},
                           {"params": rest, "weight_decay": 0.0}],
                          lr=float(net.get("learning_rate", 0.001)), momentum=float(net.get("momentum", 0.9)))
    scaler = torch.amp.GradScaler("cuda", enabled=amp)
    ce = torch.nn.CrossEntropyLoss()

    def step():
        with torch.autocast("cuda", dtype=torch.float16, enabled=amp):
            out = model(x)
            loss = sum(o.float().square().mean() for o in out) if detector else ce(out.float(), y)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        opt.zero_grad(set_to_none=True)
        torch.cuda.synchronize()

    for _ in range(3):  # cudnn.benchmark's trials
        step()
    return {"step": n / median_s(step, repeat), "version": torch.__version__}


def run_child(row, cfg, args):
    engine, env = ENGINES[row]
    cmd = [sys.executable, __file__, "--engine", engine, "--cfg", str(cfg), "--repeat", str(args.repeat)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode:
        sys.stderr.write(f"{row} on {cfg.name} failed:\n{proc.stderr[-2000:]}\n")
        return None
    return json.loads(proc.stdout.splitlines()[-1])


def torch_has_cuda():
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--nets", default="small,darknet19,yolov4-tiny")
    parser.add_argument("--cfg-dir", default=str(HERE.parents[1] / "shared" / "darknet" / "cfg"))
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--cfg", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.engine:  # a child: one engine on one cfg, a JSON line
        fn = {"darknetpy": lambda c, r: bench_darknetpy(c, r), "torch": lambda c, r: bench_torch(c, r, False),
              "torch-amp": lambda c, r: bench_torch(c, r, True)}[args.engine]
        print(json.dumps(fn(Path(args.cfg), args.repeat)))
        return
    rows = [r for r in ENGINES if torch_has_cuda() or not r.startswith("pytorch")]
    print(f"median of {args.repeat} train steps; images/s (ratio to pytorch amp+cl where it ran)")
    print(f"{'network':<18}{'batch':>6}" + "".join(f"{r:>18}" for r in rows))
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.nets.split(","):
            label, cfg, batch = NETWORKS[name]
            cfg = Path(cfg.format(cfg_dir=args.cfg_dir))
            if not cfg.exists():
                print(f"{label:<18}  (no {cfg})")
                continue
            cfg = with_batch(cfg, batch, Path(tmp))
            t0 = time.perf_counter()
            results = {r: run_child(r, cfg, args) for r in rows}
            ref = (results.get("pytorch amp+cl") or {}).get("step")
            cells = []
            for r in rows:
                v = (results[r] or {}).get("step")
                cells.append("failed" if v is None else f"{v:.1f}" + (f" ({v / ref:.2f})" if ref else ""))
            star = "*" if name.startswith("yolo") else ""
            print(f"{label + star:<18}{batch:>6}" + "".join(f"{c:>18}" for c in cells) +
                  f"   [{time.perf_counter() - t0:.0f} s]", flush=True)
    if any(n.startswith("yolo") for n in args.nets.split(",")):
        print("*: PyTorch without the YOLO loss (a sum of squares of the heads instead)")


if __name__ == "__main__":
    main()
