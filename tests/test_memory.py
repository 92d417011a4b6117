"""Memory: inference networks place layer outputs by liveness (an output's memory is reused
once its last reader has run), and the training-memory estimate matches what a training
network allocates."""
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import darknetpy as dn
from conftest import MAXPOOL, conv, package_env


def yolo(mask):
    return (f"[yolo]\nmask={mask}\nanchors=10,14, 23,27, 37,58, 81,82, 135,169, 344,319\nclasses=3\nnum=6\n"
            "jitter=.3\nscale_x_y=1.05\n\n")


# yolov4-tiny's graph (route groups, concatenations, two heads, upsample) plus shortcut, sam,
# scale_channels and an in-place dropout: sources read far after they are written
ROUTES = ("[net]\nwidth={w}\nheight={w}\nchannels=3\nbatch=2\nsubdivisions=1\n\n"
          + conv(16, stride=2) + conv(32, stride=2) + conv(32)                     # 0-2
          + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n" + conv(16)               # 3-4
          + conv(16) + "[route]\nlayers=-1,-2\n\n" + conv(32, 1)                    # 5-7
          + "[route]\nlayers=-6,-1\n\n[maxpool]\nsize=2\nstride=2\n\n"               # 8-9
          + conv(64) + "[shortcut]\nfrom=-2\nactivation=linear\n\n"                 # 10-11 (64 = 64)
          + "[dropout]\nprobability=.1\n\n" + conv(64, 1, act="logistic")           # 12-13
          + "[sam]\nfrom=-3\n\n" + "[avgpool]\n\n" + conv(64, 1, act="logistic")     # 14-16
          + "[scale_channels]\nfrom=-3\n\n" + conv(24, 1, act="linear", bn=0)       # 17-18
          + yolo("3,4,5") + "[route]\nlayers=17\n\n" + conv(32, 1)                  # 19-21
          + "[upsample]\nstride=2\n\n[route]\nlayers=-1,7\n\n" + conv(32)            # 22-24
          + conv(24, 1, act="linear", bn=0) + yolo("0,1,2"))                        # 25-26


def chain(n, w=32):
    """n equal 1x1 convolutions in a row: two outputs are alive at any time."""
    return f"[net]\nwidth={w}\nheight={w}\nchannels=3\n\n" + conv(8, 1) * n


def write(tmp_path, text, name="net.cfg"):
    path = tmp_path / name
    path.write_text(text)
    return path


def aligned(floats):
    return -(-floats // 16) * 16


def test_reused_outputs_match_kept_outputs(tmp_path):
    cfg = write(tmp_path, ROUTES.format(w=64))
    planned = dn.Network(cfg, batch=2)        # same seeded initial weights in both
    kept = dn.Network(cfg, batch=2, keep_outputs=True)
    heads = [layer.index for layer in planned.layers if "detection" in layer.caps]
    rng = np.random.default_rng(0)
    for _ in range(2):  # the second pass runs over the first one's leftovers
        x = rng.random((2, 3, 64, 64), dtype=np.float32)
        np.testing.assert_array_equal(planned.predict(x), kept.predict(x))
        for i in heads + [len(planned.layers) - 1]:
            np.testing.assert_array_equal(planned.layer_output(i), kept.layer_output(i))
    # a reused output is refused, and kept on request from the next forward on
    with pytest.raises(dn.InputError, match=r"layer 11's output is not kept.*keep_outputs=True"):
        planned.layer_output(11)
    planned.keep_output(11)
    planned.keep_output(12)  # in place: the same memory as layer 11
    planned.predict(x)
    for i in (11, 12, *heads):
        np.testing.assert_array_equal(planned.layer_output(i), kept.layer_output(i))
    kept_sizes = dn.Network(cfg, batch=2, keep_outputs=[11, 12]).memory()
    assert kept_sizes == planned.memory()


# routes that copy nothing (plan.c) and routes that must copy: a split (a view of half of 1),
# concatenations of convolutions, one whose input 9 is read again later (13), a route of one
# input followed by an in-place dropout (copies), a view of a concatenation (18), and a nested
# concatenation (21 takes 7, which holds 1, 2 and 6) that also takes 6, already held by 7
ALIASED = ("[net]\nwidth=32\nheight=32\nchannels=3\n\n" + conv(16, stride=2) + conv(32)  # 0-1
           + "[route]\nlayers=-1\ngroups=2\ngroup_id=1\n\n" + conv(16) + conv(16)       # 2-4
           + "[route]\nlayers=-1,-2\n\n" + conv(32, 1)                                    # 5-6
           + "[route]\nlayers=1,-1\n\n[maxpool]\nsize=2\nstride=2\n\n"                  # 7-8
           + conv(32) + conv(32, 1) + "[route]\nlayers=-2,-1\n\n" + conv(32, 1)           # 9-12
           + "[shortcut]\nfrom=9\nactivation=linear\n\n[route]\nlayers=-1\n\n"          # 13-14
           + "[dropout]\nprobability=.1\n\n" + conv(24, 1, act="linear", bn=0)            # 15-16
           + yolo("3,4,5") + "[route]\nlayers=11\n\n" + conv(16, 1)                       # 17-19
           + "[upsample]\nstride=2\n\n[route]\nlayers=-1,7,6\n\n"                         # 20-21
           + conv(24, 1, act="linear", bn=0) + yolo("0,1,2"))                              # 22-23


@pytest.mark.parametrize("batch", [1, 3])  # 3: image by image
def test_routes_without_copies_compute_what_copies_do(tmp_path, batch):
    """Every layer's output equals the one of a network that keeps every output (its routes
    copy), checked one kept layer at a time (a kept output is never shared, the others are), and
    the plan is smaller than any plan whose routes copy."""
    cfg = write(tmp_path, ALIASED)
    x = np.random.default_rng(5).random((batch, 3, 32, 32), dtype=np.float32)
    every = dn.Network(cfg, batch=batch, keep_outputs=True)  # same seeded initial weights in all
    want = every.predict(x)
    plain = dn.Network(cfg, batch=batch)
    np.testing.assert_array_equal(plain.predict(x), want)
    for i in range(len(every.layers)):
        net = dn.Network(cfg, batch=batch, keep_outputs=[i])
        net.predict(x)
        np.testing.assert_array_equal(net.layer_output(i), every.layer_output(i), err_msg=f"layer {i}")
    if batch == 1:
        assert plain.memory()["activations"] < 4 * (plain.inputs + peak_live_floats(plain))


def peak_live_floats(net):
    """Independent lower bound of any plan whose routes copy: the most output floats alive at
    one step. (Routes that copy nothing can go below it, or above: an input of a concatenation
    takes its place in it from its own write on.)"""
    last = {i: i for i in range(len(net.layers))}
    for layer in net.layers:
        for src in layer.input_layers:
            if src >= 0:
                last[src] = max(last[src], layer.index)
    keep = {len(net.layers) - 1} | {layer.index for layer in net.layers if "detection" in layer.caps}
    for i in keep:
        last[i] = len(net.layers)
    in_place = {layer.index for layer in net.layers if layer.type in ("dropout", "empty")}
    return max(sum(aligned(net.layers[i].outputs) for i in last if i not in in_place and i <= step <= last[i])
               for step in range(len(net.layers)))


def test_workspaces_fit_beside_the_outputs(tmp_path):
    """darknet19's start: a large first output, then Winograd layers whose fastest workspaces are
    larger than the room the outputs leave beside them (placed above the outputs they took 35%
    more, beside dead outputs 17%). They run in strips of fewer tile rows there: the arena is the
    outputs' peak (the first layer's, and its im2col blocks), and the outputs are those of a network
    with room to spare (a large last output)."""
    start = "[net]\nwidth=224\nheight=224\nchannels=3\n\n" + conv(32) + MAXPOOL
    text = start + conv(64) + MAXPOOL + conv(128)
    net = dn.Network(write(tmp_path, text))
    first = dn.Network(write(tmp_path, start + conv(1, 1), "first.cfg")).memory()  # the first layer's needs
    used = net.memory()
    assert used["activations"] + used["workspace"] == first["activations"] + first["workspace"]
    roomy = dn.Network(write(tmp_path, text + "[upsample]\nstride=4\n\n", "roomy.cfg"), keep_outputs=[4])
    assert roomy.memory()["activations"] > 4 * 16 * net.layers[4].outputs
    x = np.random.default_rng(1).random((1, 3, 224, 224), dtype=np.float32)
    out = net.predict(x)
    roomy.predict(x)
    np.testing.assert_allclose(out, roomy.layer_output(4).reshape(out.shape), rtol=1e-5, atol=1e-6)


def test_plan_size(tmp_path):
    net = dn.Network(write(tmp_path, chain(6)), batch=3)
    per = aligned(net.layers[0].outputs)
    # image by image: two one-image buffers take turns, the last output holds all three images; the
    # arena has 64 bytes more, to start its blocks on a cache line
    assert net.memory()["activations"] == 4 * (3 * net.inputs + 2 * per + 3 * per) + 64
    net = dn.Network(write(tmp_path, ROUTES.format(w=64)))
    every = dn.Network(write(tmp_path, ROUTES.format(w=64)), keep_outputs=True).memory()
    used = net.memory()
    copying = 4 * (net.inputs + peak_live_floats(net))
    assert used["activations"] <= 1.25 * copying < 0.6 * every["activations"]
    assert used["weights"] == every["weights"]
    assert used["activations"] + used["workspace"] <= every["activations"] + every["workspace"]
    net.resize(96, 96)  # a resized network is planned again
    fresh = dn.Network(write(tmp_path, ROUTES.format(w=96), "b.cfg"))
    assert net.memory()["activations"] == fresh.memory()["activations"]
    x = np.random.default_rng(1).random((1, 3, 96, 96), dtype=np.float32)
    np.testing.assert_array_equal(net.predict(x), fresh.predict(x))


def test_workspace_reuses_dead_outputs(tmp_path):
    """A layer's workspace lives in the arena while the layer runs: here, where the first
    layer's large output was, so it adds less than it takes alone."""
    dilated = "[convolutional]\nbatch_normalize=1\nfilters=32\nsize=3\nstride=1\npad=1\ndilation=2\n" \
              "activation=leaky\n\n"  # 32x32 map, not Winograd: one im2col of 9 x 32 x 1024 floats
    net = dn.Network(write(tmp_path, "[net]\nwidth=128\nheight=128\nchannels=3\n\n" + conv(32)
                           + "[maxpool]\nsize=4\nstride=4\n\n" + dilated))
    alone = dn.Network(write(tmp_path, "[net]\nwidth=32\nheight=32\nchannels=32\n\n" + dilated, "one.cfg"))
    assert alone.memory()["workspace"] >= 4 * 9 * 32 * 32 * 32
    assert net.memory()["workspace"] < alone.memory()["workspace"] / 2
    x = np.random.default_rng(4).random((1, 3, 128, 128), dtype=np.float32)
    kept = dn.Network(write(tmp_path, "[net]\nwidth=128\nheight=128\nchannels=3\n\n" + conv(32)
                            + "[maxpool]\nsize=4\nstride=4\n\n" + dilated, "kept.cfg"), keep_outputs=True)
    np.testing.assert_array_equal(net.predict(x), kept.predict(x))


def test_prepared_copies(tmp_path):
    """Inference folds batch norm into a scale and a bias per filter; the weights are packed for
    the GEMM (filters padded to whole panels of 8 or 16 by the CPU level), the packed copy
    replacing the raw one, Winograd layers' too (they transform it as they run)."""
    cfg = write(tmp_path, "[net]\nwidth=32\nheight=32\nchannels=16\n\n"
                + conv(16)                      # 32x32 map of 16 channels: Winograd
                + conv(64, stride=2)            # stride 2: im2col
                + "[maxpool]\nsize=4\nstride=4\n\n"
                + conv(256)                     # 4x4 map of 64 channels: Winograd F(2x2, 3x3)
                + conv(8, size=1))              # 1x1: the input as is
    fused, unfused = dn.Network(cfg, fuse=True), dn.Network(cfg, fuse=False)
    prepared = fused.memory()["weights"] - unfused.memory()["weights"]
    scales_biases = 2 * 16 + 2 * 64 + 2 * 256 + 2 * 8
    padding = (0, 8 * 256)  # the 8 filters of the 1x1 layer: whole panels, or half of one of 16
    assert prepared in [4 * (scales_biases + pad) for pad in padding]
    x = np.random.default_rng(2).random((1, 16, 32, 32), dtype=np.float32)
    ref = unfused.predict(x)  # ~1e9 with random weights: sums that cancel are off by rounding of the largest
    np.testing.assert_allclose(fused.predict(x), ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())


def test_winograd_layers_keep_one_copy_of_the_weights(tmp_path):
    """A Winograd layer keeps only its packed weights, as the other layers, and transforms them as
    it runs: the unfused network's outputs; the raw weights saved; a resized network stays so.
    low_memory (deprecated) warns and changes nothing."""
    cfg = write(tmp_path, "[net]\nwidth=32\nheight=32\nchannels=16\n\n"
                + conv(16) + conv(32)             # 32x32 maps of 16 channels: Winograd
                + conv(8, size=1))
    net, unfused = dn.Network(cfg), dn.Network(cfg, fuse=False)
    for size in (32, 48):
        x = np.random.default_rng(size).random((1, 16, size, size), dtype=np.float32)
        ref = unfused.predict(x)
        np.testing.assert_allclose(net.predict(x), ref, rtol=1e-4, atol=1e-5 * np.abs(ref).max())
        scales_biases = 2 * 16 + 2 * 32 + 2 * 8
        padding = (0, 8 * 32)  # the 8 filters of the 1x1 layer: whole panels, or half of one of 16
        assert net.memory()["weights"] - unfused.memory()["weights"] in [4 * (scales_biases + pad) for pad in padding]
        net.save_weights(tmp_path / "net.weights")  # the raw weights restored from the packed ones
        unfused.save_weights(tmp_path / "raw.weights")
        assert (tmp_path / "net.weights").read_bytes() == (tmp_path / "raw.weights").read_bytes()
        net.resize(48, 48)
        unfused.resize(48, 48)
    with pytest.warns(DeprecationWarning, match="low_memory"):
        lean = dn.Network(cfg, low_memory=True)
    lean.resize(48, 48)
    np.testing.assert_array_equal(lean.predict(x), net.predict(x))


def test_training_network_keeps_every_output(tmp_path):
    """A training network's inference pass changes nothing a train_step computes."""
    cfg = write(tmp_path, ROUTES.format(w=32))
    rng = np.random.default_rng(2)
    x = rng.random((2, 3, 32, 32), dtype=np.float32)
    boxes = [np.array([[1, .5, .5, .3, .4]], np.float32)] * 2
    first, second = dn.Network(cfg, batch=None), dn.Network(cfg, batch=None)
    second.predict(rng.random((2, 3, 32, 32), dtype=np.float32))
    assert first.train_step(x, boxes) == second.train_step(x, boxes)
    for i in range(len(first.layers)):
        np.testing.assert_array_equal(first.layer_output(i), second.layer_output(i))


# ---- the training-memory estimate ----------------------------------------------------------

def train_cfg(tmp_path, batch=8, subdivisions=2, w=64):
    text = ROUTES.format(w=w).replace("batch=2\nsubdivisions=1", f"batch={batch}\nsubdivisions={subdivisions}")
    return write(tmp_path, text, f"train_{batch}_{subdivisions}_{w}.cfg")


ENGINE = ("weights", "optimizer_state", "activations", "deltas", "workspace")


def test_estimate_is_what_training_allocates(tmp_path):
    cfg = train_cfg(tmp_path)
    e = dn.estimate_training_memory(cfg)
    net = dn.Network(cfg, batch=None)
    x = np.random.default_rng(3).random((8, 3, 64, 64), dtype=np.float32)
    net.train_step(x, [np.array([[1, .5, .5, .3, .4]], np.float32)] * 8)
    held = sum(net.memory().values())  # the engine's allocation tally, truth buffer included
    assert abs(e["network"] - held) <= 0.01 * held
    assert (e["batch"], e["subdivisions"], e["minibatch"], e["width"]) == (8, 2, net.batch, 64)
    assert e["network"] == sum(e[k] for k in ENGINE) and e["total"] == e["network"] + e["data"]
    assert e["deltas"] == 4 * net.batch * sum(layer.outputs for layer in net.layers if layer.type != "dropout")
    assert e["data"] == 4 * 8 * (net.inputs + net.truths)
    # a twice larger mini-batch doubles what grows with it, nothing else
    two = dn.estimate_training_memory(cfg, subdivisions=1)
    assert two["activations"] + two["deltas"] == 2 * (e["activations"] + e["deltas"]) == 2 * 4 * e["per_image"]
    assert [two[k] for k in ("weights", "optimizer_state", "workspace")] == \
        [e[k] for k in ("weights", "optimizer_state", "workspace")]
    # arguments replace the cfg's values
    assert dn.estimate_training_memory(cfg, batch=16, subdivisions=4, width=96, height=96) == \
        dn.estimate_training_memory(train_cfg(tmp_path, 16, 4, 96))
    with pytest.raises(dn.InputError, match="together"):
        dn.estimate_training_memory(cfg, width=96)


def test_training_build_names_the_subdivisions_that_fit(tmp_path):
    cfg = train_cfg(tmp_path, 8, 1)
    need = {s: dn.estimate_training_memory(cfg, subdivisions=s)["network"] for s in (1, 2, 4, 8)}
    limit = (need[2] + need[4]) // 2
    with pytest.raises(dn.OutOfMemoryError, match=r"batch=8 subdivisions=1 .*set subdivisions=4 in \[net\] "
                                                  r"\(mini-batch 2"):
        dn.Network(cfg, batch=None, max_memory=limit)
    dn.Network(train_cfg(tmp_path, 8, 4), batch=None, max_memory=limit).close()
    # when one image per mini-batch does not fit either: the input size that does
    small = dn.estimate_training_memory(cfg, subdivisions=8, width=32, height=32)["network"]
    with pytest.raises(dn.OutOfMemoryError, match=r"set subdivisions=8 and width=32 height=32"):
        dn.Network(cfg, batch=None, max_memory=(small + need[8]) // 2)


def run_child(code):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=package_env(), timeout=120,
                          cwd=tempfile.gettempdir(), capture_output=True, text=True)


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc/self/status")
def test_packing_holds_one_copy_of_the_weights(tmp_path):
    """Inference packs the weights panel by panel, each packed panel's raw rows leaving memory as it
    is written: a layer of 18 MiB of weights raises the process's peak by about that, not twice."""
    cfg = write(tmp_path, "[net]\nwidth=8\nheight=8\nchannels=512\n\n" + conv(1024))
    code = f"""
        import numpy as np
        import darknetpy as dn
        def peak():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
        before = peak()
        net = dn.Network({str(cfg)!r})
        net.predict(np.zeros(net.input_shape, np.float32))
        print(peak() - before, net.memory()["weights"] / 2**20)
    """
    child = run_child(code)
    assert child.returncode == 0, child.stderr
    grown, weights = map(float, child.stdout.split())
    assert weights > 17 and grown < 1.25 * weights, child.stdout


@pytest.mark.skipif(not os.path.exists("/proc/meminfo"), reason="needs /proc/meminfo")
def test_too_large_training_is_refused_before_allocating(tmp_path):
    """Without max_memory the limit is the memory available: a training network needing twice
    that is refused, naming subdivisions, while the process stays small."""
    per_image = dn.estimate_training_memory(train_cfg(tmp_path, 1, 1, 256))["per_image"]
    with open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    batch = 1 << int(np.ceil(np.log2(2 * available / per_image)))
    cfg = train_cfg(tmp_path, batch, 1, 256)
    code = f"""
        import darknetpy as dn
        try:
            dn.Network({str(cfg)!r}, batch=None)
        except dn.OutOfMemoryError as e:  # VmHWM: this process's peak (ru_maxrss carries the parent's over exec)
            with open("/proc/self/status") as f:
                peak = next(int(line.split()[1]) // 1024 for line in f if line.startswith("VmHWM:"))
            print("OOM", peak, e)
    """
    child = run_child(code)
    assert child.returncode == 0, child.stderr
    word, peak_mib, message = (child.stdout + "  ").split(" ", 2)
    assert word == "OOM" and f"batch={batch} subdivisions=1" in message and "set subdivisions=" in message, \
        child.stdout
    assert int(peak_mib) < 400, child.stdout


def test_check_training_memory_and_cli_check(tmp_path, capsys):
    """check_training_memory gives the training build's advice without building; -check prints the
    estimate by category and whether it fits."""
    from darknetpy.cli import main
    cfg = train_cfg(tmp_path, 8, 1)
    need = {s: dn.estimate_training_memory(cfg, subdivisions=s)["network"] for s in (1, 2, 4)}
    dn.check_training_memory(cfg, max_memory=need[1] + 1)
    with pytest.raises(dn.OutOfMemoryError, match=r"max_memory=.*set subdivisions=4 in \[net\]"):
        dn.check_training_memory(cfg, max_memory=(need[2] + need[4]) // 2)
    data = tmp_path / "obj.data"
    data.write_text("classes=1\ntrain=train.txt\n")
    assert main(["detector", "train", str(data), str(cfg), "-check"]) == 0
    out = capsys.readouterr().out
    total = dn.estimate_training_memory(cfg)["total"]
    assert "batch=8 subdivisions=1" in out and f"{total / 2 ** 20:10.1f} MiB" in out
    assert "fits in the memory available now" in out


def test_input_is_read_in_place_or_copied_alike(tmp_path):
    """The layers read an aligned caller's array in place and copy a misaligned one (a view 4 bytes
    into a buffer): the same outputs, the same whole batch or fewer images, and the array unchanged."""
    net = dn.Network(write(tmp_path, ROUTES.format(w=32)), batch=2)
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 32, 32), dtype=np.float32)
    base = np.empty(x.size + 16, np.float32)
    first = (-base.ctypes.data % 64) // 4     # a 64-byte aligned view, and one 4 bytes further
    for images in (2, 1):
        views = []
        for start in (first, first + 1):
            view = base[start:start + x.size].reshape(x.shape)
            view[:] = x
            views.append((view[:images], net.predict(view[:images])))
        (a, out_a), (b, out_b) = views
        assert a.ctypes.data % 16 == 0 and b.ctypes.data % 16 == 4
        np.testing.assert_array_equal(out_a, out_b)
        np.testing.assert_array_equal(b, x[:images])


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc/self/status")
def test_input_is_not_copied(tmp_path):
    """A forward on the host reads the caller's input where it lies: a 12 MiB input raises the
    process's peak by the 3 MiB output (and the copies predict returns), not by another 12 MiB."""
    cfg = write(tmp_path, "[net]\nwidth=1024\nheight=1024\nchannels=3\n\n" + MAXPOOL)
    code = f"""
        import numpy as np
        import darknetpy as dn
        def peak():
            with open("/proc/self/status") as f:
                return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024
        net = dn.Network({str(cfg)!r})
        x = np.ones(net.input_shape, np.float32)
        before = peak()
        net.predict(x)
        print(peak() - before, x.nbytes / 2**20)
    """
    child = run_child(code)
    assert child.returncode == 0, child.stderr
    grown, input_mib = map(float, child.stdout.split())
    assert grown < input_mib, child.stdout


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("threads", [1, 2])
def test_maxpool_writes_over_its_input(tmp_path, batch, threads):
    """A 2x2/2 maxpool on an even map writes its output over its input where nothing reads that
    later (darknet19's first layers: the 1.5 MiB pooled map beside the 6.1 MiB one): the arena
    holds the larger of the two, not both, and every output is that of a network keeping each one
    (the writes run in waves that never meet a read, on any number of threads)."""
    text = "[net]\nwidth=224\nheight=224\nchannels=3\n\n" + conv(32) + MAXPOOL + conv(16) + MAXPOOL + conv(8, 1)
    net = dn.Network(write(tmp_path, text), batch=batch, threads=threads)
    kept = dn.Network(write(tmp_path, text), batch=batch, threads=threads, keep_outputs=True)
    rng = np.random.default_rng(0)
    for _ in range(2):
        x = rng.random((batch, 3, 224, 224), dtype=np.float32)
        np.testing.assert_array_equal(net.predict(x), kept.predict(x))
    first, pooled = aligned(net.layers[0].outputs), aligned(net.layers[1].outputs)
    assert net.memory()["activations"] < 4 * (batch * net.inputs + first + pooled)
