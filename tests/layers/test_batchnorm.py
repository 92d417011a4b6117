"""[batchnorm] (spec §3.3, §4.4): inference with the rolling statistics; training with the
batch mean and biased batch variance, rolling statistics blended 0.99/0.01 (the rolling
variance from the unbiased batch variance, as cuDNN keeps it); against NumPy;
gradients; shapes of upstream cfgs."""
import numpy as np
import pytest

from _harness import (COST, assert_matches, assert_shapes_like_upstream, build, cfg_id, check_gradients, conv,
                      on_devices, outputs, param, random_input, upstream_cfgs)

SHAPE = (3, 4, 5)
PER_CHANNEL = (1, 3, 1, 1)


@on_devices
def test_inference_matches_numpy(tmp_path, device):
    net = build(tmp_path, "[batchnorm]\n", SHAPE, batch=2, device=device)
    x = random_input(net)
    mean, var = param(net, 0, "rolling_mean", PER_CHANNEL), param(net, 0, "rolling_variance", PER_CHANNEL)
    ref = param(net, 0, "scales", PER_CHANNEL) * (x - mean) / np.sqrt(var + 1e-5) + param(net, 0, "biases", PER_CHANNEL)
    assert_matches(outputs(net, x)[0], ref, "batchnorm")


def test_training_uses_batch_statistics(tmp_path):
    net = build(tmp_path, "[batchnorm]\n", SHAPE, batch=3, train=True)
    x = random_input(net, scale=2.0) + 1
    rolling = param(net, 0, "rolling_mean"), param(net, 0, "rolling_variance")
    net.backward(x, np.zeros((3, net.outputs), np.float32))
    mean, var = x.mean(axis=(0, 2, 3), dtype="f8"), x.var(axis=(0, 2, 3), dtype="f8")
    ref = (param(net, 0, "scales", PER_CHANNEL) * (x - mean.reshape(PER_CHANNEL)) /
           np.sqrt(var.reshape(PER_CHANNEL) + 1e-5) + param(net, 0, "biases", PER_CHANNEL))
    assert_matches(net.layer_output(0), ref, "training forward")
    assert_matches(param(net, 0, "rolling_mean"), 0.99 * rolling[0] + 0.01 * mean, "rolling mean")
    unbiased = x.var(axis=(0, 2, 3), dtype="f8", ddof=1)
    assert_matches(param(net, 0, "rolling_variance"), 0.99 * rolling[1] + 0.01 * unbiased, "rolling variance")


def test_gradients(tmp_path):
    body = conv(3, act="linear") + "[batchnorm]\n\n" + conv(2, act="linear") + COST
    check_gradients(build(tmp_path, body, (2, 4, 4), batch=3, train=True), n_idx=12)


@pytest.mark.parametrize("path", upstream_cfgs("batchnorm"), ids=cfg_id)
def test_shapes_like_upstream(shared, path):
    assert_shapes_like_upstream(path, "batchnorm")
