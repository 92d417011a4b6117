"""Each layer kind the CUDA backend runs, CUDA vs CPU on the same parameters and input:
every layer's output within 1e-4 of the CPU's largest value (the CPU runs unfused, CUDA
always folds batch norm). Then the backend's own behaviour: unsupported kinds and
options, partial batches, new parameters, resize, memory (training: test_train_cuda.py)."""
import sys
from pathlib import Path

import numpy as np
import pytest

import darknetpy as dn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "layers"))
from _harness import ACTIVATIONS, assert_same_outputs, build, conv, copy_params, random_input  # noqa: E402

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not dn.cuda.is_available(),
                                                   reason=f"no usable CUDA GPU: {dn.cuda.unavailable_reason()}")]

YOLO = "[yolo]\nclasses=3\nnum=3\nmask=0,2\nanchors=10,14, 23,27, 37,58\n"  # 2 slots x 8 entries
CASES = {
    "conv-3x3": (conv(4), (3, 6, 7)),
    "conv-groups-stride2": (conv(4, stride=2, extra="groups=2"), (4, 7, 7)),
    "conv-depthwise-stride_xy": (conv(6, extra="groups=3\nstride_x=2\nstride_y=1"), (3, 6, 6)),
    "conv-dilation2": (conv(3, extra="dilation=2"), (2, 7, 7)),
    "conv-1x1": (conv(5, size=1, pad=0), (4, 5, 5)),
    "conv-explicit-padding": (conv(4, pad=0, extra="padding=2"), (2, 5, 5)),
    "conv-5x5-stride3": (conv(3, size=5, stride=3), (2, 11, 10)),
    "conv-bn-leaky": (conv(4, act="leaky", extra="batch_normalize=1"), (3, 6, 6)),
    "conv-bn-mish-1x1": (conv(6, size=1, act="mish", extra="batch_normalize=1"), (3, 4, 5)),
    "conv-wide": (conv(64, act="swish", extra="batch_normalize=1"), (32, 20, 20)),
    "maxpool-2/2": ("[maxpool]\nsize=2\nstride=2\n", (3, 7, 6)),
    "maxpool-3/1": ("[maxpool]\nsize=3\nstride=1\n", (3, 5, 5)),
    "maxpool-padding": ("[maxpool]\nsize=3\nstride=2\npadding=2\n", (2, 6, 7)),
    "maxpool-depth": ("[maxpool]\nmaxpool_depth=1\nout_channels=3\n", (7, 4, 5)),
    "avgpool": ("[avgpool]\n", (5, 3, 4)),
    "route-two": (conv(4) + conv(2, act="tanh") + "[route]\nlayers=-1,-2\n", (3, 4, 5)),
    "route-groups": (conv(4) + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n", (3, 4, 5)),
    "shortcut": (conv(3) + conv(3) + "[shortcut]\nfrom=-2\nactivation=leaky\n", (3, 4, 5)),
    "shortcut-fewer-channels": (conv(2) + conv(3) + "[shortcut]\nfrom=-2\nactivation=linear\n", (3, 4, 5)),
    "upsample-2": ("[upsample]\nstride=2\n", (3, 3, 4)),
    "upsample-scale": ("[upsample]\nstride=3\nscale=0.5\n", (2, 2, 3)),
    "downsample": ("[upsample]\nstride=-2\n", (2, 6, 4)),
    "softmax": ("[softmax]\n", (3, 2, 4)),
    "softmax-groups-temperature": ("[softmax]\ngroups=3\ntemperature=2.5\n", (3, 2, 4)),
    "dropout": (conv(3) + "[dropout]\nprobability=0.5\n", (2, 4, 4)),
    "empty": (conv(3) + "[empty]\n", (2, 4, 4)),
    "yolo": (conv(16, size=1, pad=0) + YOLO + "scale_x_y=1.05\n", (3, 5, 6)),
    "yolo-new_coords": (conv(16, size=1, pad=0) + YOLO + "scale_x_y=2.0\nnew_coords=1\n", (3, 5, 6)),
    "classifier": (conv(8, act="leaky", extra="batch_normalize=1") + "[maxpool]\nsize=2\nstride=2\n" +
                   conv(10, size=1, pad=0) + "[avgpool]\n\n[softmax]\n\n[cost]\ntype=sse\n", (3, 8, 8)),
}


def pair(tmp_path, body, shape, batch=2):
    cpu = build(tmp_path, body, shape, batch=batch, device="cpu")
    gpu = build(tmp_path, body, shape, batch=batch, device="cuda")
    copy_params(cpu, gpu)
    return cpu, gpu


@pytest.mark.parametrize("case", CASES)
def test_forward_like_cpu(tmp_path, case):
    body, shape = CASES[case]
    cpu, gpu = pair(tmp_path, body, shape)
    assert gpu.backend == "cuda:0"
    assert_same_outputs(cpu, gpu, random_input(cpu, seed=1), tol=1e-4)


@pytest.mark.parametrize("act", ACTIVATIONS)
def test_activations_like_cpu(tmp_path, act):
    for body in (f"[activation]\nactivation={act}\n", conv(4, act=act)):
        cpu, gpu = pair(tmp_path, body, (3, 4, 5))
        assert_same_outputs(cpu, gpu, random_input(cpu, seed=2, scale=3.0), tol=1e-4)


def test_partial_batch_and_new_parameters(tmp_path):
    """n < batch zero-pads on the device; set_param after a forward reaches the GPU."""
    body, shape = CASES["classifier"]
    cpu, gpu = pair(tmp_path, body, shape, batch=3)
    x = random_input(cpu, seed=3)[:2]
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=0, atol=1e-5)
    w = cpu.param(0, "weights") * 0.5
    cpu.set_param(0, "weights", w)
    gpu.set_param(0, "weights", w)
    np.testing.assert_allclose(gpu.predict(x), cpu.predict(x), rtol=0, atol=1e-5)


def test_memory_counts_device_buffers(tmp_path):
    body, shape = CASES["classifier"]
    cpu, gpu = pair(tmp_path, body, shape)
    gpu.predict(random_input(gpu))  # prepare: the weights' device copies
    assert gpu.memory()["activations"] == cpu.memory()["activations"]
    assert gpu.memory()["weights"] >= 4 * sum(gpu.param(i, "weights").size for i in (0, 2))


def test_resize(tmp_path):
    body = conv(4, act="leaky") + "[maxpool]\nsize=2\nstride=2\n" + conv(3)
    cpu, gpu = pair(tmp_path, body, (3, 8, 8))
    cpu.resize(12, 10)
    gpu.resize(12, 10)
    assert_same_outputs(cpu, gpu, random_input(cpu, seed=4), tol=1e-4)


def test_unsupported_kind_and_option_fail_at_build(tmp_path):
    with pytest.raises(dn.UnsupportedError, match=r"layer 1 \[connected\] is not supported on the cuda:0"):
        build(tmp_path, conv(2) + "[connected]\noutput=3\n", (2, 3, 3), device="cuda", skip_unsupported=False)
    with pytest.raises(dn.UnsupportedError, match=r"\[shortcut\] with weights"):
        build(tmp_path, conv(3) + conv(3) + "[shortcut]\nfrom=-2\nweights_type=per_feature\n", (3, 4, 5),
              device="cuda", skip_unsupported=False)


def test_device_queries_and_close(tmp_path):
    assert dn.cuda.is_available() and dn.cuda.unavailable_reason() is None
    assert dn.cuda.device_count() >= 1
    free0, total = dn.cuda.memory_info(0)
    assert 0 < free0 <= total
    with pytest.raises(dn.DeviceError, match="does not exist"):
        dn.cuda.memory_info(dn.cuda.device_count())
    gpu = build(tmp_path, conv(256, act="leaky"), (256, 256, 256), batch=4, device="cuda")
    gpu.predict(random_input(gpu))
    used = free0 - dn.cuda.memory_info(0)[0]
    assert used >= 4 * 256 * 256 * 256 * 4  # at least the layer's output lives on the GPU
    gpu.close()
    assert dn.cuda.memory_info(0)[0] > free0 - used


def test_out_of_memory_is_typed(tmp_path):
    """Layer outputs of 4 GiB each (one tensor may hold 2^31 floats), more of them than the GPU holds."""
    _, total = dn.cuda.memory_info(0)
    layers = total // 2 ** 32 + 4
    with pytest.raises(dn.OutOfMemoryError, match="out of memory on cuda:0"):
        build(tmp_path, conv(16, size=1, pad=0) * layers, (16, 8192, 8192), batch=1, device="cuda")
