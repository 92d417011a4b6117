"""The engine's structure seen from Python: backends and instruction-set dispatch,
the explicit layer graph, resize, memory accounting, per-network threads, fork,
Ctrl-C and the shared cfg reader."""
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import threading

import numpy as np
import pytest

import darknetpy as dn
from darknetpy.cfgfile import read_cfg, read_options
from conftest import conv, package_env

# conv (Winograd-sized, BN), maxpool, a 1x1 conv, route, upsample, shortcut, yolo head
SMALL = """[net]
width={w}
height={h}
channels=3
batch={batch}
subdivisions=1

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=32
size=3
stride=1
pad=1
activation=mish

[convolutional]
filters=16
size=1
stride=1
pad=0
activation=linear

[upsample]
stride=2

[route]
layers=-1,0

[convolutional]
filters=16
size=1
stride=1
activation=leaky

[shortcut]
from=0
activation=linear

[convolutional]
filters=18
size=1
stride=1
activation=linear

[yolo]
mask=0,1,2
anchors=10,14, 23,27, 37,58
classes=1
num=3
"""


def write_cfg(tmp_path, w=64, h=64, batch=1, name="small.cfg"):
    path = tmp_path / name
    path.write_text(SMALL.format(w=w, h=h, batch=batch))
    return path


def randomise(net, seed=0):
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        if "weights" not in layer.caps or not layer.n_weights:
            continue
        for name in ("weights", "biases", "scales", "rolling_mean", "rolling_variance"):
            try:
                values = net.param(layer.index, name)
            except dn.InputError:
                continue
            if name == "rolling_variance":
                net.set_param(layer.index, name, rng.uniform(0.5, 1.5, values.shape))
            else:
                net.set_param(layer.index, name, rng.normal(0, 0.3, values.shape))


@pytest.fixture
def small(tmp_path):
    cfg = write_cfg(tmp_path)
    with dn.Network(cfg) as net:
        randomise(net)
        weights = tmp_path / "small.weights"
        net.save_weights(weights)
    return cfg, weights


def image(shape, seed=1):
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def test_layers_list_their_inputs_and_caps(small):
    net = dn.Network(small[0])
    route, shortcut, yolo = net.layers[5], net.layers[7], net.layers[9]
    assert net.layers[0].input_layers == (-1,)
    assert route.input_layers == (4, 0)
    assert shortcut.input_layers == (6, 0)
    assert {"detection", "cost"} <= yolo.caps and "classifier" not in yolo.caps
    assert {"weights", "trainable"} <= net.layers[0].caps
    assert net.classes is None


def run_child(code, env=None, timeout=120):
    # cwd outside the checkout: the child must import the same darknetpy as the tests (installed or in place)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env or package_env(), timeout=timeout,
                          cwd=tempfile.gettempdir(), capture_output=True, text=True)


# Every kernel path of an inference convolution with enough channels for the GEMM's tiles
# (k >= 64): a first layer (short k), stride 2 (im2col, k sliced), Winograd, 1x1; then SMALL's
# other kinds would add nothing here.
LEVELS_NET = ("[net]\nwidth=64\nheight=64\nchannels=3\n\n" + conv(64) + conv(64, stride=2, act="mish")
              + conv(64, act="swish") + conv(32, size=1, act="logistic") + conv(48, size=1, act="linear", bn=0))


@pytest.mark.parametrize("level, backend", [("baseline", "cpu (base)"), ("avx2", "cpu (avx2)")])
def test_every_level_computes_what_the_dispatched_one_does(tmp_path, level, backend):
    """Every instruction-set level computes the same network, within rounding (where it fuses
    multiply-adds). Each level's kernels are compiled from the same source, and the compiler
    can still build one level differently (its GEMM once kept its accumulators in memory)."""
    cfg, weights = tmp_path / "levels.cfg", tmp_path / "levels.weights"
    cfg.write_text(LEVELS_NET)
    with dn.Network(cfg) as net:
        if level == "avx2" and net.backend == "cpu (base)":
            pytest.skip("this CPU has no AVX2")
        randomise(net)
        net.save_weights(weights)
    x = image((3, 64, 64))
    np.save(tmp_path / "x.npy", x)
    code = f"""
        import numpy as np, darknetpy as dn
        net = dn.Network({str(cfg)!r}, {str(weights)!r})
        print(net.backend)
        np.save({str(tmp_path / 'out.npy')!r}, net.predict(np.load({str(tmp_path / 'x.npy')!r})))
    """
    child = run_child(code, {**package_env(), "DARKNETPY_CPU": level})
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == backend
    ours = dn.Network(cfg, weights).predict(x)
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ours, rtol=1e-4, atol=1e-4 * np.abs(ours).max())


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("qemu-x86_64"), reason="qemu-user is not installed")
def test_runs_on_an_old_cpu(small, tmp_path):
    """A 2008 CPU (Nehalem: SSE4.2, no AVX) runs the default build without an illegal instruction."""
    cfg, weights = small
    code = f"""
        import numpy as np, darknetpy as dn
        net = dn.Network({str(cfg)!r}, {str(weights)!r})
        print(net.backend, float(net.predict(np.full((3, 64, 64), 0.5, np.float32)).sum()))
    """
    child = subprocess.run(["qemu-x86_64", "-cpu", "Nehalem", sys.executable, "-c", textwrap.dedent(code)],
                           cwd=tempfile.gettempdir(),
                           env=package_env(), capture_output=True, text=True, timeout=300)
    assert child.returncode == 0, child.stderr[-2000:]
    backend, total = child.stdout.split(")")
    assert backend == "cpu (base"
    expected = dn.Network(cfg, weights).predict(np.full((3, 64, 64), 0.5, np.float32)).sum()
    assert float(total) == pytest.approx(float(expected), rel=1e-5)


CLASSIFIER = "[net]\nwidth=12\nheight=12\nchannels=3\n\n" + conv(8) + """[dropout]
probability=0.3

[maxpool]
size=2
stride=2

[connected]
output=5
activation=linear

[softmax]
"""


@pytest.mark.parametrize("kind", ["detector", "classifier"])
def test_a_batch_infers_like_its_images_one_by_one(small, tmp_path, kind):
    """Batched inference (image by image through the network, or layer by layer where a
    [connected] layer multiplies the whole batch) equals batch-1 inference, layer by layer,
    in-place layers included; and the batch view is restored for the next call."""
    if kind == "detector":
        cfg, weights = small
        shape = (3, 64, 64)
    else:
        cfg, weights = tmp_path / "classifier.cfg", tmp_path / "classifier.weights"
        cfg.write_text(CLASSIFIER)
        with dn.Network(cfg) as net:
            randomise(net)
            net.save_weights(weights)
        shape = (3, 12, 12)
    x = np.stack([image(shape, seed) for seed in range(3)])
    with dn.Network(cfg, weights, batch=3, keep_outputs=True) as net3, \
            dn.Network(cfg, weights, keep_outputs=True) as net1:
        for _ in range(2):
            net3.predict(x)
            for b in range(3):
                net1.predict(x[b])
                for i in range(len(net1.layers)):
                    np.testing.assert_allclose(net3.layer_output(i)[b], net1.layer_output(i)[0], rtol=1e-5,
                                               atol=1e-6, err_msg=f"layer {i}, image {b}")
            x = x[::-1].copy()
        np.testing.assert_allclose(net3.predict(x[1:]), net1.predict(x[1:]), rtol=1e-5, atol=1e-6)  # a part batch


def test_layer_times_count_each_forward_once(small):
    """Per-layer timing: every layer of every forward (a chunk of predict; a batch run image by image
    is one forward) is summed, outputs are unchanged, and stopping it clears the times."""
    cfg, weights = small
    x = np.stack([image((3, 64, 64), seed) for seed in range(3)])
    with dn.Network(cfg, weights, batch=2) as net:
        expected = net.predict(x)
        assert not net.layer_times().any()
        net.time_layers()
        for _ in range(2):
            np.testing.assert_array_equal(net.predict(x), expected)
        seconds, forwards = net._handle.layer_times()
        assert forwards == 4  # two predicts of two chunks each
        assert (seconds > 0).all()
        np.testing.assert_allclose(net.layer_times(), seconds * 1e3 / 4)
        net.time_layers(False)
        net.predict(x)
        assert not net.layer_times().any()


def test_resize_equals_a_network_built_at_that_size(small, tmp_path):
    cfg, weights = small
    net = dn.Network(cfg, weights)
    net.predict(image((3, 64, 64)))
    net.resize(96, 32)
    assert net.input_shape == (3, 32, 96) and net.layers[9].output_shape == (18, 32, 96)
    fresh = dn.Network(write_cfg(tmp_path, 96, 32, name="big.cfg"), weights)
    x = image((3, 32, 96))
    np.testing.assert_array_equal(net.predict(x), fresh.predict(x))


def test_resize_keeps_training_state(tmp_path, small):
    """Multi-scale training: parameters, momentum and counters survive a resize."""
    cfg = tmp_path / "cls.cfg"
    cfg.write_text("[net]\nwidth=32\nheight=32\nchannels=3\nbatch=4\nsubdivisions=1\nlearning_rate=0.1\n"
                   "momentum=0.9\n\n[convolutional]\nfilters=8\nsize=3\npad=1\nactivation=leaky\n\n"
                   "[avgpool]\n\n[softmax]\n")
    net = dn.Network(cfg, batch=None)
    x, y = image((4, 3, 32, 32)), np.eye(8, dtype=np.float32)[[0, 1, 2, 3]]
    net.train_step(x, y)
    w, u = net.param(0, "weights"), net.param_delta(0, "weights")
    net.resize(48, 48)
    assert net.iteration == 1
    np.testing.assert_array_equal(net.param(0, "weights"), w)
    np.testing.assert_array_equal(net.param_delta(0, "weights"), u)
    assert np.isfinite(net.train_step(image((4, 3, 48, 48)), y))


def test_resize_refuses_size_dependent_layers(tmp_path):
    cfg = tmp_path / "fc.cfg"
    cfg.write_text("[net]\nwidth=8\nheight=8\nchannels=1\n\n[connected]\noutput=4\nactivation=linear\n")
    net = dn.Network(cfg)
    before = net.predict(image((1, 8, 8)))
    with pytest.raises(dn.InputError, match="cannot be resized"):
        net.resize(16, 16)
    np.testing.assert_array_equal(net.predict(image((1, 8, 8))), before)  # unchanged


def test_memory_counts_what_the_network_holds(tmp_path):
    one = dn.Network(write_cfg(tmp_path, batch=1), batch=1).memory()
    four = dn.Network(write_cfg(tmp_path, batch=1), batch=4).memory()
    assert four["weights"] == one["weights"] > 0
    # image by image, outputs that are not kept take room for one image, the others for four
    assert one["activations"] < four["activations"] < 4 * one["activations"]
    # the arena holds 64 bytes more than its blocks, to start them on a cache line
    kept = [dn.Network(write_cfg(tmp_path, batch=1), batch=b, keep_outputs=True).memory() for b in (1, 4)]
    assert kept[1]["activations"] - 64 == 4 * (kept[0]["activations"] - 64)
    # with every output kept: each layer's output in its own 64-byte aligned place, and the input
    net = dn.Network(write_cfg(tmp_path), keep_outputs=True)
    expect = 4 * (sum(-(-layer.outputs // 16) * 16 for layer in net.layers) + net.inputs) + 64
    assert net.memory()["activations"] == expect > one["activations"]


def available_bytes():
    with open("/proc/meminfo") as f:
        return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="needs /proc/meminfo")
def test_oversized_network_is_refused_before_it_is_touched(tmp_path):
    """Memory is reserved lazily, so without the check a network twice the machine's
    memory would build and the process would be killed on its first pass."""
    per_layer = 1000 * 16 * 256 * 256 * 4  # batch 1000, each tensor well under the size limit
    layers = 2 * available_bytes() // per_layer + 2
    cfg = tmp_path / "deep.cfg"
    cfg.write_text("[net]\nwidth=256\nheight=256\nchannels=3\n\n"
                   + "[convolutional]\nfilters=16\nsize=1\nactivation=leaky\n\n" * layers)
    code = f"""
        import darknetpy as dn
        try:
            dn.Network({str(cfg)!r}, batch=1000, keep_outputs=True)
        except dn.OutOfMemoryError as e:
            print("OOM", e)
    """
    child = run_child(code, timeout=60)
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("OOM") and "batch" in child.stdout


def test_threads_are_per_network_and_per_call(small):
    cfg, weights = small
    x = image((3, 64, 64))
    one = dn.Network(cfg, weights, threads=1)
    first = one.predict(x)
    dn.Network(cfg, weights, threads=2).predict(x)  # another network's setting ...
    np.testing.assert_array_equal(one.predict(x), first)  # ... does not leak into this one
    result = {}
    worker = threading.Thread(target=lambda: result.setdefault("y", one.predict(x)))
    worker.start()
    worker.join()
    np.testing.assert_array_equal(result["y"], first)  # and it holds on any calling thread


@pytest.mark.skipif(sys.platform != "linux", reason="fork start method")
def test_predict_after_fork(small):
    cfg, weights = small
    code = f"""
        import multiprocessing as mp, numpy as np, darknetpy as dn
        net = dn.Network({str(cfg)!r}, {str(weights)!r}, threads=2)
        x = np.full((3, 64, 64), 0.25, np.float32)
        parent = net.predict(x)

        def child(q):
            q.put(net.predict(x))

        ctx = mp.get_context("fork")
        q = ctx.Queue()
        p = ctx.Process(target=child, args=(q,))
        p.start()
        got = q.get(timeout=60)
        p.join()
        print(np.abs(got - parent).max())
    """
    child = run_child(code, timeout=120)
    assert child.returncode == 0, child.stderr
    assert float(child.stdout) < 1e-5


def test_ctrl_c_stops_a_long_forward(tmp_path):
    """SIGINT during a forward ends it at the next layer boundary with KeyboardInterrupt,
    and the network still works afterwards."""
    cfg = tmp_path / "heavy.cfg"
    layer = "[convolutional]\nfilters=64\nsize=3\npad=1\nactivation=leaky\n\n"
    cfg.write_text("[net]\nwidth=256\nheight=256\nchannels=64\n\n" + layer * 12)
    code = f"""
        import os, signal, threading, time, numpy as np, darknetpy as dn
        net = dn.Network({str(cfg)!r}, fuse=False)
        x = np.full(net.input_shape, 0.1, np.float32)
        t0 = time.perf_counter(); net.predict(x); full = time.perf_counter() - t0
        threading.Timer(full / 4, os.kill, (os.getpid(), signal.SIGINT)).start()
        t0 = time.perf_counter()
        try:
            net.predict(x)
            print("not interrupted")
        except KeyboardInterrupt:
            print("interrupted", (time.perf_counter() - t0) / full)
        print(net.predict(x[None]).shape)
    """
    child = run_child(code, timeout=300)
    assert child.returncode == 0, child.stderr
    words = child.stdout.split()
    assert words[0] == "interrupted", child.stdout
    assert float(words[1]) < 0.75  # it stopped well before the end of the pass
    assert "(1, 4194304)" in child.stdout


def test_cfg_reader_is_the_engines(tmp_path):
    cfg = tmp_path / "a.cfg"
    cfg.write_text("[net]\n width = 32 # not a comment\nheight=32\n\n# comment\n[convolutional]\nfilters=4\n"
                   "filters=8\n")
    net_section, conv = read_cfg(cfg)
    assert (net_section.type, net_section.line, conv.name) == ("[net]", 1, "convolutional")
    assert net_section.get("width") == "32#notacomment"  # darknet removes all whitespace, keeps the rest
    assert conv.get("filters") == "4" and conv.options[1] == ("filters", "8", 8)
    bad = tmp_path / "bad.cfg"
    bad.write_text("[net]\nwidth\n")
    with pytest.raises(dn.CfgError, match=r"bad.cfg:2"):
        read_cfg(bad)
    data = tmp_path / "d.data"
    data.write_text("classes = 2\nnames=x.names\nresults\n")
    assert read_options(data) == [("classes", "2", 1), ("names", "x.names", 2), ("results", "", 3)]


def test_max_memory_names_the_batch_that_fits(tmp_path):
    cfg = write_cfg(tmp_path, 128, 128)
    need = dn.Network(cfg, batch=8).memory()
    per_image = sum(need.values()) - sum(dn.Network(cfg, batch=7).memory().values())
    limit = sum(need.values()) - 3 * per_image  # room for 5 images
    with pytest.raises(dn.OutOfMemoryError, match="a batch of 5 fits"):
        dn.Network(cfg, batch=8, max_memory=limit)
    dn.Network(cfg, batch=5, max_memory=limit).close()


def test_import_leaves_the_environment_alone():
    child = run_child("""
        import os
        before = dict(os.environ)
        import darknetpy
        print(dict(os.environ) == before)
    """, {k: v for k, v in package_env().items() if k != "OMP_WAIT_POLICY"})
    assert child.stdout.strip() == "True", child.stderr


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("aarch64-linux-gnu-gcc"), reason="no aarch64 cross compiler")
def test_engine_builds_for_aarch64():
    script = os.path.join(os.path.dirname(__file__), "..", "tools", "check_aarch64.sh")
    if not os.path.exists(script):
        pytest.skip("source checkout only")
    done = subprocess.run(["bash", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ARM aarch64" in done.stdout
