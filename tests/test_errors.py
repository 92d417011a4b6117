"""Broken cfgs and weights give typed exceptions with useful messages and never
crash the interpreter: the corpus runs in a subprocess so a crash fails the test."""
import json
import subprocess
import sys
import textwrap

import pytest

from conftest import package_env

GOOD_NET = "[net]\nwidth=16\nheight=16\nchannels=3\n"
CONV = "[convolutional]\nfilters=4\nsize=3\nstride=1\npad=1\nactivation=leaky\n"

# name -> (cfg text, substring the CfgError message must contain)
BROKEN_CFGS = {
    "missing_equals": (GOOD_NET + "[convolutional]\nfilters 4\n", "missing '='"),
    "empty_value": (GOOD_NET + "[convolutional]\nfilters=\n", "no value"),
    "unknown_key": (GOOD_NET + CONV + "filterz=3\n", "unknown key 'filterz'"),
    "unknown_section": (GOOD_NET + "[convolution]\nfilters=4\n", "unknown section"),
    "unsupported_section": (GOOD_NET + "[lstm]\noutput=2\n", "does not support [lstm]"),
    "no_net_first": (CONV + GOOD_NET, "must be [net]"),
    "no_sections": ("# nothing\n", "no sections"),
    "option_before_section": ("width=3\n" + GOOD_NET, "before the first section"),
    "no_layers": (GOOD_NET, "no layers"),
    "zero_size": (GOOD_NET + "[convolutional]\nfilters=4\nsize=0\n", "must be positive"),
    "negative_filters": (GOOD_NET + "[convolutional]\nfilters=-3\nsize=3\n", "must be positive"),
    "zero_width": ("[net]\nwidth=0\nheight=0\nchannels=3\n" + CONV, "positive"),
    "huge_sizes": ("[net]\nwidth=100000\nheight=100000\nchannels=3\n" + CONV, "too large"),
    "huge_filters": (GOOD_NET + "[convolutional]\nfilters=2000000000\nsize=3\n", "too large"),
    "kernel_too_big": (GOOD_NET + "[convolutional]\nfilters=4\nsize=40\n", "does not fit"),
    "route_past_end": (GOOD_NET + CONV + "[route]\nlayers=5\n", "refers to layer 5"),
    "route_before_start": (GOOD_NET + CONV + "[route]\nlayers=-4\n", "refers to layer -3"),
    "route_missing_layers": (GOOD_NET + CONV + "[route]\n", "layers"),
    "shortcut_past_end": (GOOD_NET + CONV + "[shortcut]\nfrom=3\n", "refers to layer 3"),
    "bad_activation": (GOOD_NET + "[convolutional]\nfilters=4\nactivation=leaky#x\n", "unknown activation"),
    "conv_after_softmax": (GOOD_NET + CONV + "[softmax]\n" + CONV, "must output an image"),
    "bad_groups": (GOOD_NET + "[convolutional]\nfilters=4\ngroups=2\n", "groups=2"),
    "yolo_filters_mismatch": (GOOD_NET + CONV + "[yolo]\nclasses=80\nmask=0,1,2\nnum=3\n", "filters"),
    "bad_policy": ("[net]\nwidth=8\nheight=8\nchannels=3\npolicy=warp\n" + CONV, "policy"),
    "steps_without_scales": ("[net]\nwidth=8\nheight=8\nchannels=3\npolicy=steps\nsteps=1,2\n" + CONV, "scales"),
    "softmax_bad_groups": (GOOD_NET + CONV + "[softmax]\ngroups=7\n", "groups=7"),
    "dropout_probability": (GOOD_NET + CONV + "[dropout]\nprobability=1.5\n", "probability"),
}

SCRIPT = textwrap.dedent("""
    import json, sys
    import darknetpy as dn
    cases = json.loads(sys.stdin.read())
    results = {}
    for name, path in cases.items():
        try:
            dn.Network(path, batch=1)
            results[name] = ["ok", ""]
        except Exception as e:
            results[name] = [type(e).__name__, str(e)]
    print(json.dumps(results))
""")


def run_corpus(cases, cwd):
    """Build each cfg in a fresh interpreter that imports the package this test imported."""
    proc = subprocess.run([sys.executable, "-c", SCRIPT], input=json.dumps(cases), capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=package_env())
    assert proc.returncode == 0, f"the interpreter died (rc={proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout)


def test_broken_cfgs_raise_cfg_error(tmp_path):
    cases = {}
    for name, (text, _) in BROKEN_CFGS.items():
        path = tmp_path / f"{name}.cfg"
        path.write_text(text)
        cases[name] = str(path)
    results = run_corpus(cases, tmp_path)
    for name, (_, needle) in BROKEN_CFGS.items():
        kind, message = results[name]
        assert kind == "CfgError", (name, kind, message)
        assert needle in message, (name, message)
        assert f"{name}.cfg" in message, (name, message)


def test_missing_cfg_is_file_not_found(tmp_path):
    import darknetpy as dn
    with pytest.raises(FileNotFoundError, match="nope.cfg"):
        dn.Network(tmp_path / "nope.cfg")


def test_generated_corpus_never_crashes(tmp_path):
    """Mutations of a valid cfg (dropped lines, swapped values, junk) may build or
    raise a DarknetError, but never kill the interpreter or raise anything else."""
    import random
    base = (GOOD_NET + CONV + "[maxpool]\nsize=2\nstride=2\n" + CONV + "[route]\nlayers=-1,-3\n"
            "[shortcut]\nfrom=-2\nactivation=linear\n[upsample]\nstride=2\n[avgpool]\n[softmax]\n").splitlines()
    junk = ["size=-1", "stride=0", "filters=0", "layers=-9", "from=100", "groups=0", "[maxpool]", "[yolo]",
            "padding=-5", "stride=-3", "size=100000", "batch_normalize=1", "width=-1", "mask=9,9"]
    rng = random.Random(0)
    cases = {}
    for i in range(60):
        lines = list(base)
        for _ in range(rng.randint(1, 3)):
            op = rng.random()
            pos = rng.randrange(1, len(lines))
            if op < 0.4:
                del lines[pos]
            else:
                lines.insert(pos, rng.choice(junk))
        path = tmp_path / f"m{i}.cfg"
        path.write_text("\n".join(lines) + "\n")
        cases[f"m{i}"] = str(path)
    for name, (kind, message) in run_corpus(cases, tmp_path).items():
        assert kind in ("ok", "CfgError"), (name, kind, message, (tmp_path / f"{name}.cfg").read_text())


def test_truncated_and_bad_weights(oracle, tmp_path):
    import darknetpy as dn
    src = (oracle / "tiny" / "tiny.weights").read_bytes()
    cfg = oracle / "tiny" / "tiny.cfg"
    net = dn.Network(cfg, batch=1)
    (tmp_path / "short").write_bytes(src[:7])
    with pytest.raises(dn.WeightsError, match="short"):
        net.load_weights(tmp_path / "short")
    (tmp_path / "cut").write_bytes(src[:len(src) // 2])
    assert 0 < net.load_weights(tmp_path / "cut") < len(net.layers)
    (tmp_path / "long").write_bytes(src + b"\0" * 1000)
    assert net.load_weights(tmp_path / "long") == len(net.layers)
    with pytest.raises(FileNotFoundError):
        net.load_weights(tmp_path / "missing.weights")


def test_wrong_input_shapes(oracle):
    import numpy as np
    import darknetpy as dn
    net = dn.Network(oracle / "tiny" / "tiny.cfg", batch=1)
    with pytest.raises(dn.InputError, match="224"):
        net.predict(np.zeros((3, 10, 10), np.float32))
    with pytest.raises(TypeError, match="float32"):
        net.predict(np.zeros((3, 224, 224), np.float64))
    net.close()
    with pytest.raises(ValueError, match="closed"):
        net.predict(np.zeros((3, 224, 224), np.float32))


@pytest.mark.parametrize("key", ["adam", "ema_alpha"])
def test_unimplemented_training_features_are_refused_for_training_only(tmp_path, key):
    import darknetpy as dn
    cfg = tmp_path / "net.cfg"
    cfg.write_text(f"[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\n{key}=1\n" + CONV)
    dn.Network(cfg).close()  # inference ignores them, as upstream does
    with pytest.raises(dn.CfgError, match=f"{key}= is not supported for training"):
        dn.Network(cfg, batch=None)


@pytest.mark.parametrize("key", ["mosaic", "mixup", "cutmix", "blur"])
def test_batch_mixing_keys_are_left_to_the_loaders(tmp_path, key):
    """The engine builds a training network with them; the detector loader implements them and
    the classifier trainer refuses them (tests/test_train.py)."""
    import darknetpy as dn
    cfg = tmp_path / "net.cfg"
    cfg.write_text(f"[net]\nbatch=2\nwidth=8\nheight=8\nchannels=3\n{key}=1\n" + CONV)
    dn.Network(cfg, batch=None).close()
