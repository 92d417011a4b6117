"""Fuzz the weights reader: each input is a .weights file loaded (strict and not) into a
small network with every kind of weighted record (conv with and without batch norm,
grouped conv, connected with batch norm, batchnorm, shortcut weights), then a forward.

    python tests/fuzz/fuzz_weights.py -max_total_time=1800 [corpus_dir]
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

CFG = """[net]
width=6
height=6
channels=2
[convolutional]
filters=4
size=3
pad=1
batch_normalize=1
activation=leaky
[convolutional]
filters=4
groups=2
size=1
activation=linear
[batchnorm]
[shortcut]
from=-3
weights_type=per_channel
[connected]
output=3
batch_normalize=1
activation=linear
"""
STATS = common.Stats("fuzz_weights")
PATHS = {}


def paths() -> dict:
    if not PATHS:
        PATHS["cfg"] = common.scratch_file(".cfg")
        PATHS["weights"] = PATHS["cfg"][:-4] + ".weights"
        with open(PATHS["cfg"], "w") as f:
            f.write(CFG)
    return PATHS


def check(data: bytes) -> None:
    p = paths()
    with open(p["weights"], "wb") as f:
        f.write(data)
    strict = bool(data[-1] & 1) if data else False
    try:
        with common.dn.Network(p["cfg"], p["weights"], strict=strict, max_memory=common.MAX_MEMORY) as net:
            out = net.predict(np.full(net.input_shape, .5, np.float32))
            assert out.shape == (1, 3)
        STATS.count("loaded")
    except common.EXPECTED as e:
        STATS.count(type(e).__name__)


def seeds():
    """A valid file (random weights saved by the engine), its 0.1-header twin and a truncation."""
    p = paths()
    with common.dn.Network(p["cfg"], fuse=False, max_memory=common.MAX_MEMORY) as net:
        net.save_weights(p["weights"])
    with open(p["weights"], "rb") as f:
        good = f.read()
    return [good, np.array([0, 1, 0, 7], np.int32).tobytes() + good[20:], good[:100]]


if __name__ == "__main__":
    common.main("fuzz_weights", check, seeds)
