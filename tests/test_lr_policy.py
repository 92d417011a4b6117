"""Learning-rate policies, burn-in (spec §4.6) and the training counters (spec §2.1, §4.1)."""
import math
import struct

import numpy as np
import pytest

import darknetpy as dn


def make(tmp_path, policy_lines, batch=4, subdivisions=2):
    cfg = tmp_path / "lr.cfg"
    cfg.write_text(f"[net]\nbatch={batch}\nsubdivisions={subdivisions}\nwidth=4\nheight=4\nchannels=1\n"
                   f"{policy_lines}\n\n[convolutional]\nfilters=2\nsize=1\nactivation=linear\n\n"
                   "[avgpool]\n\n[softmax]\n")
    return dn.Network(cfg, batch=None)


def rate_at(net, b):
    net.set_counters(b * net.batch * net.subdivisions, b)
    return net.learning_rate


def step(net):
    n = net.batch * net.subdivisions
    x = np.random.default_rng(0).random((n, 1, 4, 4), dtype=np.float32)
    return net.train_step(x, np.eye(2, dtype=np.float32)[np.arange(n) % 2])


def test_verified_burn_in_poly_sequence(tmp_path):
    """[V] eta0=0.1, burn_in=2, power=4, poly, max_batches=3 -> 0.006250, 0.001235, 0.000000; the
    rate after each update is the one that update used (the first uses b = 1)."""
    net = make(tmp_path, "learning_rate=0.1\nburn_in=2\npower=4\npolicy=poly\nmax_batches=3")
    rates = []
    for _ in range(3):
        step(net)
        rates.append(net.learning_rate)
    assert [f"{r:f}" for r in rates] == ["0.006250", "0.001235", "0.000000"]


@pytest.mark.parametrize("lines,expected", [
    ("policy=constant", lambda b: 0.1),
    ("policy=step\nstep=3\nscale=0.5", lambda b: 0.1 * 0.5 ** (b // 3)),
    ("policy=steps\nsteps=2,5,5,9\nscales=.1,10,.5,.2",
     lambda b: 0.1 * (0.1 if b >= 2 else 1) * (10 * 0.5 if b >= 5 else 1) * (0.2 if b >= 9 else 1)),
    ("policy=exp\ngamma=0.9", lambda b: 0.1 * 0.9 ** b),
    ("policy=poly\npower=2\nmax_batches=20", lambda b: 0.1 * (1 - b / 20) ** 2),
    ("policy=sigmoid\ngamma=0.5\nstep=6", lambda b: 0.1 / (1 + math.exp(0.5 * (b - 6)))),
], ids=["constant", "step", "steps", "exp", "poly", "sigmoid"])
def test_policies(tmp_path, lines, expected):
    net = make(tmp_path, "learning_rate=0.1\n" + lines)
    for b in range(12):
        assert rate_at(net, b) == pytest.approx(expected(b), rel=1e-5, abs=1e-9), b


def test_sgdr(tmp_path):
    net = make(tmp_path, "learning_rate=0.1\npolicy=sgdr\nmax_batches=40\nsgdr_cycle=4\nsgdr_mult=2\n"
               "learning_rate_min=0.001")

    def expected(b):
        start, length = 0, 4
        while start + length < b:
            start, length = start + length, length * 2
        return 0.001 + 0.5 * (0.1 - 0.001) * (1 + math.cos((b - start) * 3.14159265 / length))
    for b in range(30):
        assert rate_at(net, b) == pytest.approx(expected(b), rel=1e-5), b


def test_random_policy(tmp_path):
    net = make(tmp_path, "learning_rate=0.1\npolicy=random\npower=1")
    rates = [rate_at(net, b) for b in range(20)]
    assert all(0 <= r <= 0.1 for r in rates) and len(set(rates)) == 20
    assert rate_at(net, 7) == rates[7]  # the rate logged after an update is the one it used


def test_burn_in_overrides_every_policy(tmp_path):
    net = make(tmp_path, "learning_rate=0.1\nburn_in=10\npower=2\npolicy=steps\nsteps=1\nscales=0.001")
    for b in range(10):
        assert rate_at(net, b) == pytest.approx(0.1 * (b / 10) ** 2, rel=1e-5)
    assert rate_at(net, 10) == pytest.approx(1e-4, rel=1e-5)


def test_counters_in_weights_header(tmp_path):
    net = make(tmp_path, "learning_rate=0.01", batch=4, subdivisions=2)
    for _ in range(3):
        step(net)
    assert (net.iteration, net.seen) == (3, 3 * 4)
    # upstream writes seen = cur_iteration * mini_batch * subdivisions (spec §2.1)
    net.set_counters(13, 3)
    path = tmp_path / "c.weights"
    net.save_weights(path)
    major, minor, rev, seen = struct.unpack("<3iQ", path.read_bytes()[:20])
    assert (major, minor, rev, seen) == (0, 2, 5, 12)
    again = dn.Network(tmp_path / "lr.cfg", path, batch=None)
    assert (again.seen, again.iteration) == (12, 3)
    # resuming continues the schedule from the loaded counters
    assert again.learning_rate == pytest.approx(0.01)
