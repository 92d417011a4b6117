"""Fuzz the cfg reader and network builder: raw bytes as a .cfg file, or (first byte
odd) a cfg assembled from the engine's sections, keys and hostile values. Networks
that build run a forward pass (or a training step) when they are small.

    python tests/fuzz/fuzz_cfg.py -max_total_time=1800 [corpus_dir]
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SECTIONS = ["convolutional", "maxpool", "local_avgpool", "avgpool", "connected", "softmax", "route", "shortcut",
            "upsample", "dropout", "batchnorm", "activation", "yolo", "scale_channels", "sam", "reorg3d", "cost",
            "empty", "conv", "max", "region", "nonsense"]
KEYS = ["filters", "size", "stride", "stride_x", "stride_y", "pad", "padding", "groups", "dilation",
        "batch_normalize", "activation", "output", "layers", "from", "maxpool_depth", "out_channels", "mask",
        "anchors", "num", "classes", "probability", "temperature", "scale_wh", "weights_type",
        "weights_normalization", "share_index", "type", "scale", "stopbackward", "dontload", "group_id",
        "scale_x_y", "new_coords", "xnor", "antialiasing", "learning_rate", "bogus"]
NET_KEYS = ["width", "height", "channels", "inputs", "batch", "subdivisions", "policy", "step", "steps", "scales",
            "sgdr_cycle", "sgdr_mult", "max_batches", "learning_rate", "burn_in", "time_steps", "power", "gamma",
            "mosaic", "adam", "max_crop", "bogus"]
VALUES = ["0", "1", "2", "3", "-1", "-2", "4", "7", "16", "32", "65536", "2147483647", "-2147483648", "4294967297",
          "3abc", "8.9", "1e-3", "abc", "-1,,,", "1,2", "0,1,2", "-1,-3", "10,13,16,30,33,23", "1,2,3", "leaky",
          "linear", "mish", "logistic", "relu", "swish", "sse", "smooth", "steps", "step", "sgdr", "poly",
          "constant", "random", "per_channel", "per_feature", "relu", "softmax", "#", "1#c", "nan", "inf", "1e39",
          "0x10", " ", "=", "[net]", "\x00", "é"]
MAX_WORK = 2_000_000  # floats of layer outputs a forward may touch


def assemble(b: common.Bytes) -> bytes:
    def value():
        return str(b.int_in(-3, 70)) if b.byte() < 96 else b.pick(VALUES)

    lines = ["[net]", f"width={b.int_in(1, 40)}", f"height={b.int_in(1, 40)}", f"channels={b.int_in(1, 5)}"]
    lines += [f"{b.pick(NET_KEYS)}={value()}" for _ in range(b.byte() % 4)]
    for _ in range(1 + b.byte() % 7):
        lines.append(f"[{b.pick(SECTIONS)}]")
        lines += [f"{b.pick(KEYS)}={value()}" for _ in range(b.byte() % 6)]
    return ("\n".join(lines) + "\n").encode() + b.rest()


PATH = None
STATS = common.Stats("fuzz_cfg")


def exercise(net, train: bool) -> None:
    if sum(layer.outputs for layer in net.layers) * net.batch * net.subdivisions > MAX_WORK:
        return
    if train:
        x = np.full((net.batch * net.subdivisions,) + net.input_shape, .5, np.float32)
        net.train_step(x, np.zeros((len(x), net.outputs), np.float32))
        net.learning_rate
    else:
        net.predict(np.full(net.input_shape, .5, np.float32))


def check(data: bytes) -> None:
    global PATH
    if PATH is None:
        PATH = common.scratch_file(".cfg")
    b = common.Bytes(data)
    first = b.byte()
    text = assemble(b) if first & 1 else data[1:]
    with open(PATH, "wb") as f:
        f.write(text)
    train = bool(first & 2)
    try:
        with common.dn.Network(PATH, batch=None if train else 1, max_memory=common.MAX_MEMORY) as net:
            exercise(net, train)
        STATS.count("built")
    except common.EXPECTED as e:
        STATS.count(type(e).__name__)


def seeds():
    return [b"\x01" + bytes(range(40)), b"\x00[net]\nwidth=8\nheight=8\nchannels=3\n[convolutional]\nfilters=4\n"
            b"size=3\npad=1\nactivation=leaky\n[maxpool]\nsize=2\nstride=2\n[route]\nlayers=-1\n"]


if __name__ == "__main__":
    common.main("fuzz_cfg", check, seeds)
