"""Data-parallel training (DataParallel, dn_network_train_step_parallel) on host networks, where
it runs without a GPU: two networks of batch B trained together equal one network of batch 2B
(no batch norm, whose statistics are per device), momentum and decay included; the GPU run with
NCCL is in tests/gpu/test_train_cuda.py."""
import numpy as np
import pytest

import darknetpy as dn
from darknetpy import _libdarknet

NET = """[net]
batch={batch}
subdivisions={sub}
width=6
height=6
channels=2
learning_rate=0.1
momentum=0.9
decay=0.01
burn_in=0

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
filters=3
size=1
stride=1
pad=0
activation=linear

[avgpool]

[softmax]
"""


def cfg(tmp_path, name, batch, sub):
    path = tmp_path / name
    path.write_text(NET.format(batch=batch, sub=sub))
    return path


@pytest.mark.parametrize("sub", [1, 2])
def test_two_networks_train_like_one_with_both_batches(tmp_path, sub):
    one = dn.Network(cfg(tmp_path, "one.cfg", 4 * sub, sub), batch=None)
    with dn.DataParallel(cfg(tmp_path, "half.cfg", 2 * sub, sub), devices=["cpu", "cpu"]) as par:
        assert par.images_per_step == 4 * sub
        for i in (0, 2):
            for name in ("weights", "biases"):
                for net in par.networks:
                    net.set_param(i, name, one.param(i, name))
        rng = np.random.default_rng(0)
        for step in range(3):
            x = rng.random((4 * sub, 2, 6, 6), dtype=np.float32)
            y = np.eye(3, dtype=np.float32)[rng.integers(3, size=4 * sub)]
            np.testing.assert_allclose(par.train_step(x, y), one.train_step(x, y), rtol=1e-5, err_msg=f"step {step}")
        for i in (0, 2):
            for name in ("weights", "biases"):
                ref = one.param(i, name)
                for net in par.networks:  # every copy took the same update
                    np.testing.assert_allclose(net.param(i, name), ref, rtol=0, atol=1e-6, err_msg=f"{i} {name}")
        assert [n.iteration for n in par.networks] == [3, 3] and one.iteration == 3


def test_wrong_image_count_and_unequal_networks(tmp_path):
    with dn.DataParallel(cfg(tmp_path, "a.cfg", 2, 1), devices=["cpu", "cpu"]) as par:
        with pytest.raises(dn.InputError, match="needs 4 images"):
            par.train_step(np.zeros((2, 2, 6, 6), np.float32), np.zeros((2, 3), np.float32))
        other = dn.Network(cfg(tmp_path, "b.cfg", 3, 1), batch=None)
        with pytest.raises(dn.InputError, match="was not built like network 0"):
            _libdarknet.train_step_parallel([par.network._handle, other._handle], np.zeros((5, 72), np.float32),
                                            np.zeros((5, 3), np.float32))
