"""Peak resident memory of darknetpy at batch 1, as a user's process sees it: each model in its own
process, VmHWM (the whole process: Python, numpy, the engine's libraries) after `import darknetpy`,
after loading cfg + weights, and after 3 forwards; with net.memory()'s figures. Synthetic weights.

    python benchmarks/memory_cpu.py [--build DIR ...] [--cfg-dir ../shared/darknet/cfg] [models...]

A model is a cfg name, optionally @SIZE for a SIZE x SIZE input (yolov4@416). Each --build is a
checkout holding an in-place build (default: this one); several builds are measured side by side.
"""
import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
MODELS = ["darknet19", "darknet53", "yolov4-tiny", "yolov4@416", "yolov4"]


# The measured process: Python, numpy and darknetpy, nothing of this harness's own (argparse,
# subprocess, tempfile: 1 MB), and no numpy.random (secrets, hashlib, libcrypto: 4.5 MB) for its input.
WORKER = r"""
import sys
import numpy as np
import darknetpy as dn

def peak_mb():  # this process's peak resident memory (VmHWM), MB
    with open("/proc/self/status") as f:
        return int(f.read().split("VmHWM:")[1].split()[0]) / 1024

marks = [peak_mb()]
net = dn.Network(sys.argv[1], sys.argv[2], threads=2)
marks.append(peak_mb())
x = ((np.arange(np.prod(net.input_shape), dtype=np.float32) * 0.618034) % 1).reshape(net.input_shape)
for _ in range(3):
    net.predict(x)
marks.append(peak_mb())
m = net.memory()
print(*marks, *(m[k] / 2**20 for k in ("weights", "activations", "workspace")))
"""


def measure(build, cfg, weights):
    # bytecode compiled first, as an installed package has it: compiling our modules at import
    # (PYTHONDONTWRITEBYTECODE, a fresh checkout) costs 1.4 MB of the figure
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(build / "darknetpy")], check=True,
                   capture_output=True)
    env = {**os.environ, "PYTHONPATH": str(build)}
    out = subprocess.run([sys.executable, "-c", WORKER, str(cfg), str(weights)], env=env, check=True,
                         capture_output=True, text=True)
    return [float(v) for v in out.stdout.split()[-6:]]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", type=Path, action="append")
    parser.add_argument("--cfg-dir", type=Path, default=HERE.parents[1] / "shared" / "darknet" / "cfg")
    parser.add_argument("models", nargs="*", default=MODELS)
    args = parser.parse_args()
    from forward_cpu import sized_cfg
    from machine import describe
    from weights_gen import write_synthetic_weights

    builds = [b.resolve() for b in args.build or [HERE.parent]]
    for i, b in enumerate(builds):
        print(f"build {i}: {b}")
    print(describe())
    print("peak RSS (VmHWM, MB) after import / load / 3 forwards; net.memory() MB: weights, activations, workspace")
    print(f"{'model':<14}{'build':>6}{'import':>8}{'load':>8}{'forward':>9}{'weights':>9}{'activ':>7}{'work':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models:
            name, _, size = model.partition("@")
            cfg = args.cfg_dir / f"{name}.cfg"
            if size:
                cfg = sized_cfg(cfg, int(size), tmp)
            weights = Path(tmp) / f"{name}.weights"
            if not weights.exists():
                write_synthetic_weights(cfg, weights)
            for i, b in enumerate(builds):
                r = measure(b, cfg, weights)
                print(f"{model:<14}{i:>6}{r[0]:>8.1f}{r[1]:>8.1f}{r[2]:>9.1f}{r[3]:>9.1f}{r[4]:>7.1f}{r[5]:>7.1f}")


if __name__ == "__main__":
    main()
