"""Training on CUDA against the CPU engine (whose gradients tests/layers checks against finite
differences): per layer kind, one backward with the same parameters gives the same loss, input
delta, layer deltas and parameter deltas; train_step gives the same losses and parameters over
several iterations (batch norm in training mode, momentum, decay, subdivisions); a detector's
[yolo] loss; the parameters the GPU trained reach save_weights, param() and resize; data-parallel
training over GPUs (NCCL; two GPUs needed for more than one). Runs with
cuDNN and, in tools/gpu_check.sh, again with DARKNETPY_CUDNN=0 (im2col + cuBLAS)."""
import sys
from pathlib import Path

import numpy as np
import pytest

import darknetpy as dn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers"))
from _harness import (COST, assert_same_gradients, build, check_gradients, conv, copy_params,  # noqa: E402
                      random_input)

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not dn.cuda.is_available(),
                                                   reason=f"no usable CUDA GPU: {dn.cuda.unavailable_reason()}")]

SOFTMAX = "[softmax]\n"
CASES = {  # body ending in a loss layer, input (c, h, w)
    "conv-3x3": (conv(4, act="leaky") + COST, (3, 6, 7)),
    "conv-bn-leaky": (conv(4, act="leaky", extra="batch_normalize=1") + COST, (3, 6, 6)),
    "conv-bn-mish-1x1": (conv(6, size=1, pad=0, act="mish", extra="batch_normalize=1") + COST, (3, 4, 5)),
    "conv-swish-stride2-groups": (conv(4, stride=2, act="swish", extra="groups=2") + COST, (4, 7, 7)),
    "conv-dilation2": (conv(3, act="logistic", extra="dilation=2") + COST, (2, 7, 7)),
    "conv-5x5-stride3": (conv(3, size=5, stride=3, act="tanh") + COST, (2, 11, 10)),
    "conv-normalize_channels": (conv(4, act="normalize_channels_softmax") + COST, (2, 4, 4)),
    "maxpool-2/2": (conv(3) + "[maxpool]\nsize=2\nstride=2\n" + COST, (2, 7, 6)),
    "maxpool-3/1": (conv(3) + "[maxpool]\nsize=3\nstride=1\n" + COST, (2, 5, 5)),
    "maxpool-padding": (conv(2) + "[maxpool]\nsize=3\nstride=2\npadding=2\n" + COST, (2, 6, 7)),
    "maxpool-depth": (conv(6) + "[maxpool]\nmaxpool_depth=1\nout_channels=3\n" + COST, (2, 4, 5)),
    "avgpool-softmax": (conv(5, act="leaky") + "[avgpool]\n\n" + SOFTMAX, (3, 4, 4)),
    "route": (conv(4) + conv(2, act="tanh") + "[route]\nlayers=-1,-2\n\n" + conv(2) + COST, (3, 4, 5)),
    "route-groups": (conv(4) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n" + conv(2) + COST, (3, 4, 5)),
    "shortcut-mish": (conv(3) + conv(3) + "[shortcut]\nfrom=-2\nactivation=mish\n\n" + COST, (3, 4, 5)),
    "shortcut-fewer-channels": (conv(2) + conv(3) + "[shortcut]\nfrom=-2\nactivation=leaky\n\n" + COST, (3, 4, 5)),
    "upsample": (conv(2) + "[upsample]\nstride=2\n\n" + conv(2) + COST, (2, 3, 4)),
    "downsample": (conv(2) + "[upsample]\nstride=-2\nscale=0.5\n\n" + COST, (2, 6, 4)),
    "activation-gelu": (conv(3) + "[activation]\nactivation=gelu\n\n" + COST, (2, 4, 4)),
    "dropout": (conv(3) + "[dropout]\nprobability=0.3\n\n" + conv(2) + COST, (2, 4, 4)),
    "empty": (conv(3) + "[empty]\n\n" + COST, (2, 4, 4)),
    "cost-smooth": (conv(3) + "[cost]\ntype=smooth\nscale=0.5\n", (2, 4, 4)),
}


def pair(tmp_path, body, shape, batch=3):
    cpu = build(tmp_path, body, shape, batch=batch, train=True, device="cpu")
    gpu = build(tmp_path, body, shape, batch=batch, train=True, device="cuda")
    copy_params(cpu, gpu)
    return cpu, gpu


def truth(net, seed=0):
    rng = np.random.default_rng(seed)
    if net.layers[-1].type == "softmax":  # one-hot classes
        return np.eye(net.outputs, dtype=np.float32)[rng.integers(net.outputs, size=net.batch)]
    return rng.standard_normal((net.batch, net.outputs)).astype(np.float32)


@pytest.mark.parametrize("case", CASES)
def test_backward_like_cpu(tmp_path, case):
    body, shape = CASES[case]
    cpu, gpu = pair(tmp_path, body, shape)
    assert gpu.backend == "cuda:0"
    assert_same_gradients(cpu, gpu, random_input(cpu, seed=1), truth(cpu), tol=1e-4)


@pytest.mark.parametrize("case", ["conv-bn-leaky", "maxpool-3/1", "shortcut-mish", "avgpool-softmax"])
def test_gradients_on_cuda_match_finite_differences(tmp_path, case):
    body, shape = CASES[case]
    check_gradients(build(tmp_path, body, shape, batch=3, train=True, device="cuda"), seed=3)


TRAIN_NET = """[net]
batch={batch}
subdivisions={sub}
width=8
height=8
channels=3
learning_rate=0.05
momentum=0.9
decay=0.0005
burn_in=0

""" + conv(8, act="leaky", extra="batch_normalize=1") + "[maxpool]\nsize=2\nstride=2\n\n" + \
    conv(8, act="mish", extra="batch_normalize=1") + conv(4, size=1, pad=0, act="linear") + \
    "[avgpool]\n\n[softmax]\n"


@pytest.mark.parametrize("sub", [1, 2])
def test_train_steps_like_cpu(tmp_path, sub):
    """Losses and parameters (rolling statistics included) over 4 iterations of SGD with momentum."""
    cfg = tmp_path / "t.cfg"
    cfg.write_text(TRAIN_NET.format(batch=4 * sub, sub=sub))
    cpu, gpu = dn.Network(cfg, batch=None), dn.Network(cfg, batch=None, device="cuda")
    copy_params(cpu, gpu)
    rng = np.random.default_rng(0)
    for it in range(4):
        x = rng.random((4 * sub, 3, 8, 8), dtype=np.float32)
        y = np.eye(4, dtype=np.float32)[rng.integers(4, size=4 * sub)]
        np.testing.assert_allclose(gpu.train_step(x, y), cpu.train_step(x, y), rtol=1e-4, err_msg=f"loss {it}")
    for i in range(len(cpu.layers)):
        for name in ("weights", "biases", "scales", "rolling_mean", "rolling_variance"):
            try:
                ref = cpu.param(i, name)
            except dn.InputError:
                continue
            np.testing.assert_allclose(gpu.param(i, name), ref, rtol=0, atol=1e-4 * np.abs(ref).max(),
                                       err_msg=f"layer {i} {name}")
    assert gpu.iteration == cpu.iteration == 4


YOLO_NET = """[net]
batch=2
subdivisions=1
width=32
height=32
channels=3
learning_rate=0.01
momentum=0.9
decay=0.0005
burn_in=0

""" + conv(8, act="leaky", extra="batch_normalize=1") + "[maxpool]\nsize=2\nstride=2\n\n" + \
    conv(8, act="leaky", extra="batch_normalize=1") + "[maxpool]\nsize=2\nstride=2\n\n" + \
    conv(16, size=1, pad=0) + """[yolo]
classes=3
num=3
mask=0,1
anchors=4,6, 10,12, 20,24
scale_x_y=1.05
iou_loss=ciou
"""


def test_detector_train_steps_like_cpu(tmp_path):
    """The [yolo] loss (computed on the host from the GPU's head) and its statistics."""
    cfg = tmp_path / "y.cfg"
    cfg.write_text(YOLO_NET)
    cpu, gpu = dn.Network(cfg, batch=None), dn.Network(cfg, batch=None, device="cuda")
    copy_params(cpu, gpu)
    rng = np.random.default_rng(1)
    boxes = [np.array([[0, .3, .4, .2, .3], [2, .7, .6, .4, .2]], np.float32), np.array([[1, .5, .5, .3, .3]],
                                                                                         np.float32)]
    for it in range(3):
        x = rng.random((2, 3, 32, 32), dtype=np.float32)
        np.testing.assert_allclose(gpu.train_step(x, boxes), cpu.train_step(x, boxes), rtol=1e-4,
                                   err_msg=f"loss {it}")
    head = len(cpu.layers) - 1
    np.testing.assert_allclose(gpu.layer_delta(head), cpu.layer_delta(head), rtol=0, atol=1e-4)
    assert gpu.detection_stats()[head]["count"] == cpu.detection_stats()[head]["count"]
    np.testing.assert_allclose(gpu.param(0, "weights"), cpu.param(0, "weights"), rtol=0, atol=1e-4)


def test_trained_parameters_reach_the_host(tmp_path):
    """save_weights and resize read what the GPU trained; set_param and load_weights reach the GPU."""
    cfg = tmp_path / "t.cfg"
    cfg.write_text(TRAIN_NET.format(batch=4, sub=1))
    gpu = dn.Network(cfg, batch=None, device="cuda")
    before = gpu.param(0, "weights")
    x = np.random.default_rng(2).random((4, 3, 8, 8), dtype=np.float32)
    y = np.eye(4, dtype=np.float32)[[0, 1, 2, 3]]
    gpu.train_step(x, y)
    gpu.save_weights(tmp_path / "a.weights")
    trained = gpu.param(0, "weights")
    assert not np.array_equal(trained, before)
    with dn.Network(cfg, tmp_path / "a.weights", batch=None) as cpu, \
            dn.Network(cfg, tmp_path / "a.weights", batch=None, device="cuda") as fresh:
        np.testing.assert_array_equal(cpu.param(0, "weights"), trained)
        np.testing.assert_allclose(fresh.train_step(x, y), cpu.train_step(x, y), rtol=1e-4)
        np.testing.assert_allclose(fresh.param(0, "weights"), cpu.param(0, "weights"), rtol=0, atol=1e-5)
    gpu.train_step(x, y)
    after = gpu.param(2, "weights")
    gpu.resize(16, 16)
    np.testing.assert_array_equal(gpu.param(2, "weights"), after)
    gpu.train_step(np.zeros((4, 3, 16, 16), np.float32), y)
    gpu.load_weights(tmp_path / "a.weights")
    np.testing.assert_array_equal(gpu.param(0, "weights"), trained)


def test_share_index_training_is_refused(tmp_path):
    cfg = tmp_path / "s.cfg"
    cfg.write_text("[net]\nbatch=2\nsubdivisions=1\nwidth=4\nheight=4\nchannels=2\n\n" + conv(2) +
                   conv(2, extra="share_index=0") + COST)
    with pytest.raises(dn.UnsupportedError, match="share_index, in training"):
        dn.Network(cfg, batch=None, device="cuda")


@pytest.mark.parametrize("devices", [["cuda:0"], ["cuda:0", "cuda:1"]])
def test_data_parallel_like_one_cpu_network(tmp_path, devices):
    """n GPUs of batch 2 (NCCL sums their gradients) against one CPU network of batch 2n; the
    cfg has no batch norm, whose statistics are per device."""
    if dn.cuda.device_count() < len(devices):
        pytest.skip(f"needs {len(devices)} GPUs")
    n = len(devices)
    body = conv(6, act="leaky") + "[maxpool]\nsize=2\nstride=2\n\n" + conv(4, size=1, pad=0) + "[avgpool]\n\n" + SOFTMAX
    head = "[net]\nbatch={}\nsubdivisions=1\nwidth=8\nheight=8\nchannels=3\nlearning_rate=0.1\nmomentum=0.9\n" \
           "decay=0.01\nburn_in=0\n\n"
    (tmp_path / "one.cfg").write_text(head.format(2 * n) + body)
    (tmp_path / "part.cfg").write_text(head.format(2) + body)
    one = dn.Network(tmp_path / "one.cfg", batch=None)
    with dn.DataParallel(tmp_path / "part.cfg", devices=devices) as par:
        for net in par.networks:
            copy_params(one, net)
        rng = np.random.default_rng(0)
        for step in range(3):
            x = rng.random((2 * n, 3, 8, 8), dtype=np.float32)
            y = np.eye(4, dtype=np.float32)[rng.integers(4, size=2 * n)]
            np.testing.assert_allclose(par.train_step(x, y), one.train_step(x, y), rtol=1e-4, err_msg=f"step {step}")
        for net in par.networks:
            np.testing.assert_allclose(net.param(0, "weights"), one.param(0, "weights"), rtol=0, atol=1e-5)
