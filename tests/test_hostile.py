"""Hostile input (issue 12): every case runs in a child interpreter, so a crash (a
signal), a hang (the timeout) or an untyped error fails the test. The child prints
`label -> ExceptionType: message` (or `label -> OK ...`) for each attempt and the
WARNING logs of the darknetpy logger."""
import math
import os
import struct
import subprocess
import sys
import textwrap
import zlib

import pytest

from conftest import package_env

PRELUDE = textwrap.dedent("""
    import logging, os, sys
    import numpy as np
    import darknetpy as dn
    logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="LOG %(levelname)s %(message)s")

    def attempt(label, fn):
        try:
            print(f"{label} -> OK {fn()!r}", flush=True)
        except Exception as e:
            print(f"{label} -> {type(e).__name__}: {e}", flush=True)
""")


def run_child(tmp_path, body: str, files: dict = None, timeout: float = 60):
    """Run PRELUDE + body in tmp_path after writing `files` (name -> str or bytes);
    returns ({label: result}, [log lines])."""
    for name, content in (files or {}).items():
        (tmp_path / name).write_bytes(content.encode() if isinstance(content, str) else content)
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)], cwd=tmp_path, env=package_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"child died (status {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    results = dict(line.split(" -> ", 1) for line in proc.stdout.splitlines() if " -> " in line)
    return results, [line for line in proc.stdout.splitlines() if line.startswith("LOG ")]


def net(width=4, height=4, channels=3, extra=""):
    return f"[net]\nwidth={width}\nheight={height}\nchannels={channels}\n{extra}"


CONV = "[convolutional]\nfilters=2\nsize=1\nactivation=linear\n"


def test_01_net_inputs_must_match_the_image(tmp_path):
    files = {"mismatch.cfg": net(extra="inputs=100\n") + CONV,
             "partial.cfg": "[net]\nwidth=4\ninputs=12\n" + CONV,
             "alone.cfg": "[net]\ninputs=8\n[connected]\noutput=2\nactivation=linear\n"}
    res, _ = run_child(tmp_path, """
        attempt("mismatch", lambda: dn.Network("mismatch.cfg").predict(np.zeros((3, 4, 4), np.float32)))
        attempt("partial", lambda: dn.Network("partial.cfg"))
        n = dn.Network("alone.cfg")
        x = np.linspace(-1, 1, 8, dtype=np.float32)
        want = n.param(0, "weights").reshape(2, 8) @ x + n.param(0, "biases")
        attempt("alone", lambda: (n.input_shape, float(np.abs(n.predict(x.reshape(8, 1, 1))[0] - want).max())))
    """, files)
    assert res["mismatch"].startswith("CfgError: mismatch.cfg:1: [net]") and "inputs=100 does not match" in res["mismatch"]
    assert res["partial"].startswith("CfgError") and "inputs=12" in res["partial"]
    shape, err = eval(res["alone"][3:])
    assert shape == (8, 1, 1) and err < 1e-5


@pytest.mark.parametrize("kind", ["maxpool", "local_avgpool"])
def test_02_pool_sizes_are_checked_in_64_bits(tmp_path, kind):
    files = {"pad.cfg": net(2, 2, 3) + f"[{kind}]\nsize=1\nstride=1\npadding=65536\n",
             "depth.cfg": net(4096, 4096, 1) + "[maxpool]\nmaxpool_depth=1\nout_channels=257\nsize=1\nstride=1\n",
             "ok.cfg": net(4, 4, 1) + f"[{kind}]\nsize=2\nstride=2\n"}
    res, _ = run_child(tmp_path, """
        for name in ("pad", "depth", "ok"):
            def go():
                n = dn.Network(name + ".cfg")
                return n.predict(np.ones(n.input_shape, np.float32)).shape
            attempt(name, go)
    """, files)
    assert res["pad"].startswith("CfgError: pad.cfg:5:") and "larger than the limit" in res["pad"]
    assert res["depth"].startswith("CfgError: depth.cfg:5:") and "out_channels=257" in res["depth"]
    assert res["ok"] == "OK (1, 4)"


def test_03_step_policy_needs_a_positive_step(tmp_path):
    files = {"step0.cfg": net(extra="batch=2\npolicy=step\nstep=0\nscale=.5\n") + CONV}
    res, _ = run_child(tmp_path, """
        attempt("train", lambda: dn.Network("step0.cfg", batch=None).learning_rate)
        attempt("infer", lambda: dn.Network("step0.cfg").learning_rate)
    """, files)
    for key in ("train", "infer"):
        assert res[key].startswith("CfgError: step0.cfg:1: [net]") and "step >= 1" in res[key]


def test_04_sgdr_cycles_are_validated_and_the_rate_is_bounded(tmp_path):
    sgdr = "batch=1\nlearning_rate=0.1\npolicy=sgdr\n"
    files = {"cycle0.cfg": net(extra=sgdr + "max_batches=10\nsgdr_cycle=0\n") + CONV,
             "mult0.cfg": net(extra=sgdr + "max_batches=10\nsgdr_mult=0\n") + CONV,
             "nocycle.cfg": net(extra=sgdr) + CONV}
    res, _ = run_child(tmp_path, """
        attempt("cycle0", lambda: dn.Network("cycle0.cfg", batch=None))
        attempt("mult0", lambda: dn.Network("mult0.cfg", batch=None))
        attempt("nocycle_train", lambda: dn.Network("nocycle.cfg", batch=None))
        n = dn.Network("nocycle.cfg")   # inference: max_batches=0 leaves the cycle at 0
        n.set_counters(10**6, 0)
        attempt("rate", lambda: n.learning_rate)
    """, files, timeout=30)
    assert res["cycle0"].startswith("CfgError: cycle0.cfg:1:") and "sgdr_cycle >= 1" in res["cycle0"]
    assert res["mult0"].startswith("CfgError: mult0.cfg:1:") and "sgdr_mult=0" in res["mult0"]
    assert res["nocycle_train"].startswith("CfgError") and "defaults to max_batches" in res["nocycle_train"]
    # cycles of 1, 2, 4, ...: batch 10**6 lies in the cycle starting at 2**19 - 1, of length 2**19
    start, length, lo = 2 ** 19 - 1, 2 ** 19, 1e-5
    want = lo + .5 * (.1 - lo) * (1 + math.cos((10 ** 6 - start) * math.pi / length))
    assert float(res["rate"][3:]) == pytest.approx(want, rel=1e-4)


def test_05_threads_argument_is_validated(tmp_path):
    files = {"a.cfg": net() + CONV}
    res, _ = run_child(tmp_path, """
        for t in (100000, 1025, 0, -1, 1.5, True, "4"):
            attempt(repr(t), lambda: dn.Network("a.cfg", threads=t))
        attempt("2", lambda: dn.Network("a.cfg", threads=2).input_shape)
    """, files)
    for t in ("100000", "1025", "0", "-1", "1.5", "True", "'4'"):
        assert res[t].startswith("InputError: threads must be None") and "1 to 1024" in res[t], res[t]
    assert res["2"] == "OK (3, 4, 4)"


def test_07_cfg_reader_limits_lines_and_file_size(tmp_path):
    files = {"oneline.cfg": "[net]" + "a" * 200_000, "big.cfg": net() + CONV + "#\n" * 9_000_000}
    res, _ = run_child(tmp_path, """
        for path in ("/dev/zero", "/dev/urandom", "oneline.cfg", "big.cfg"):
            attempt(path, lambda: dn.Network(path))
    """, files, timeout=30)
    assert res["/dev/zero"].startswith("CfgError: /dev/zero:1: NUL byte")
    assert res["/dev/urandom"].startswith("CfgError: /dev/urandom:")
    assert res["oneline.cfg"].startswith("CfgError: oneline.cfg:1: line longer than 65536 bytes")
    assert res["big.cfg"].startswith("CfgError: big.cfg: larger than 16 MiB")


def test_09_short_long_and_foreign_weights_warn_or_raise(tmp_path):
    files = {"a.cfg": net(4, 4, 2) + "[convolutional]\nfilters=3\nsize=3\npad=1\nbatch_normalize=1\n"
             "activation=leaky\n" + CONV, "text.weights": "# not weights at all\n" * 4}
    res, logs = run_child(tmp_path, """
        dn.Network("a.cfg", fuse=False).save_weights("good.weights")
        good = open("good.weights", "rb").read()
        open("short.weights", "wb").write(good[:-10])
        open("long.weights", "wb").write(good + bytes(8))
        # a 0.2 file whose header claims 0.1: the 4-byte seen leaves 4 bytes over
        open("v01.weights", "wb").write(np.array([0, 1, 0], np.int32).tobytes() + good[12:])
        for w in ("good.weights", "short.weights", "long.weights", "v01.weights", "/dev/zero", "text.weights"):
            for strict in (False, True):
                attempt(f"{w} {strict}", lambda: dn.Network("a.cfg", w, strict=strict).input_shape)
    """, files)
    assert res["good.weights False"] == res["good.weights True"] == "OK (2, 4, 4)"
    for w, what in [("short.weights", "is too short: it ends inside layer 1 (convolutional)"),
                    ("long.weights", "has 8 bytes left after the last of 2 layers"),
                    ("v01.weights", "has 4 bytes left"), ("/dev/zero", "has at least 1 bytes left")]:
        assert res[f"{w} False"] == "OK (2, 4, 4)"
        assert res[f"{w} True"].startswith(f"WeightsError: {w} ") and what in res[f"{w} True"]
        assert any(line.startswith(f"LOG WARNING {w} ") and what in line for line in logs), (w, logs)
    assert "1 of 2 layers loaded" in res["short.weights True"]
    for strict in (False, True):
        assert res[f"text.weights {strict}"].startswith("WeightsError: text.weights: not a darknet weights file")
    assert len(logs) == 4


NUMBER_CASES = {
    # name: (cfg, line, text the CfgError must contain)
    "filters": (net() + "[convolutional]\nfilters=4294967297\n", 6, "filters=4294967297 in [convolutional]"),
    "size": (net() + "[convolutional]\nsize=3abc\n", 6, "size=3abc in [convolutional]: not a whole number"),
    "width": ("[net]\nwidth=8.9\nheight=4\nchannels=3\n" + CONV, 2, "width=8.9 in [net]: not a whole number"),
    "learning_rate": (net(extra="learning_rate=abc\n") + CONV, 5, "learning_rate=abc in [net]: not a finite"),
    "layers": (net() + CONV + "[route]\nlayers=-1,,,\n", 10, "layers=-1,,, in [route]: item 2"),
    "nul": (net() + "[convolutional]\nfilters=4\x005\n", 6, "NUL byte after 'filters=4'"),
    "groups": (net() + "[convolutional]\nfilters=2\ngroups=0\n", 5, "groups=0 must be >= 1"),
    "anchors": (net(32, 32, 3) + "[convolutional]\nfilters=18\n[yolo]\nmask=0,1,2\nnum=3\nclasses=1\n"
                "anchors=1,2,3,4,5\n", 7, "anchors= lists 5 values, an odd number"),
    "net_key": (net(extra="widht=4\n") + CONV, 5, "unknown key 'widht' in [net]"),
    "inline_comment_ok": (net() + "[convolutional]\nfilters=2#two\nlearning_rate=1e-1\n", 0, ""),
}


def test_10_numbers_are_whole_tokens_in_range(tmp_path):
    files = {f"{name}.cfg": text for name, (text, _, _) in NUMBER_CASES.items()}
    res, _ = run_child(tmp_path, """
        for name in %r:
            attempt(name, lambda: dn.Network(name + ".cfg").layers[0].output_shape)
    """ % list(NUMBER_CASES), files)
    for name, (_, line, text) in NUMBER_CASES.items():
        if not text:
            assert res[name] == "OK (2, 4, 4)"
            continue
        assert res[name].startswith(f"CfgError: {name}.cfg:{line}:") and text in res[name], res[name]


def test_training_loss_layers_must_fit_the_truth(tmp_path):
    """Fuzz finding: a [softmax] before the last layer read training truth past its end."""
    mid = net(extra="batch=2\n") + "[softmax]\n[connected]\noutput=5\nactivation=linear\n"
    files = {"mid.cfg": mid, "noloss.cfg": mid.replace("[softmax]\n", "[softmax]\nnoloss=1\n")}
    res, _ = run_child(tmp_path, """
        for name in ("mid", "noloss"):
            def go():
                n = dn.Network(name + ".cfg", batch=None)
                x = np.full((2, 3, 4, 4), .5, np.float32)
                return round(n.train_step(x, np.zeros((2, n.outputs), np.float32)), 3)
            attempt(name, go)
        attempt("infer", lambda: dn.Network("mid.cfg").outputs)
    """, files)
    assert res["mid"].startswith("CfgError: mid.cfg:6: [softmax] (layer 0) computes a loss over its 48 outputs")
    assert res["noloss"].startswith("OK ") and res["infer"] == "OK 5"


def test_12_save_writes_through_links_and_refuses_special_files(tmp_path):
    files = {"a.cfg": net() + CONV, "target.weights": "old"}
    os.symlink("target.weights", tmp_path / "link.weights")
    os.mkfifo(tmp_path / "fifo")
    res, _ = run_child(tmp_path, """
        n = dn.Network("a.cfg")
        n.save_weights("direct.weights")
        n.save_weights("link.weights")
        attempt("link", lambda: (os.path.islink("link.weights"),
                                 open("target.weights", "rb").read() == open("direct.weights", "rb").read()))
        attempt("fifo", lambda: n.save_weights("fifo"))
        attempt("dir", lambda: n.save_weights("."))
        attempt("nul_cfg", lambda: dn.Network("a\\0.cfg"))
        attempt("nul_load", lambda: n.load_weights("direct.weights\\0x"))
        attempt("nul_save", lambda: n.save_weights("x\\0.weights"))
        attempt("nul_image", lambda: dn.load_image("x\\0.png"))
    """, files)
    assert res["link"] == "OK (True, True)"
    assert res["fifo"].startswith("OSError: cannot write fifo: it is a device or special file")
    assert res["dir"].startswith("OSError: cannot write .: it is a directory")
    for key, what in [("cfg", "cfg"), ("load", "weights"), ("save", "weights"), ("image", "image")]:
        assert res[f"nul_{key}"].startswith(f"InputError: the {what} path") and "NUL byte" in res[f"nul_{key}"]


def png_header(w: int, h: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(10))) + chunk(b"IEND", b""))


def test_smaller_cases_raise_typed_errors_with_a_hint(tmp_path):
    lying_chunk = png_header(7, 5).replace(b"\x00\x00\x00\x00IEND", b"\xff\xff\xff\xffIEND")
    files = {"a.cfg": net() + CONV, "huge.png": png_header(100_000, 100_000), "text.weights": "hello\n" * 10,
             "chunk.png": lying_chunk}
    os.mkdir(tmp_path / "dir.weights")
    os.symlink("loop2", tmp_path / "loop1")
    os.symlink("loop1", tmp_path / "loop2")
    res, _ = run_child(tmp_path, """
        n = dn.Network("a.cfg")
        attempt("png", lambda: dn.load_image("huge.png"))
        attempt("png_chunk", lambda: dn.load_image("chunk.png"))  # OpenCV would reserve 4 GiB
        attempt("empty_batch", lambda: n.predict(np.zeros((0, 3, 4, 4), np.float32)))
        attempt("zero_height", lambda: dn.image.to_chw(np.zeros((0, 5, 3), np.uint8)))
        attempt("zero_height_chw", lambda: dn.image.resize_min(np.zeros((3, 0, 5), np.float32), 4))
        attempt("dir_weights", lambda: n.load_weights("dir.weights"))
        attempt("loop_cfg", lambda: dn.Network("loop1"))
        attempt("empty_cfg", lambda: dn.Network(""))
        attempt("empty_weights", lambda: n.load_weights(""))
    """, files)
    assert res["png"].startswith("InputError: cannot decode image huge.png") and "absurd" in res["png"]
    assert res["png_chunk"].startswith("InputError: cannot decode image chunk.png: its PNG chunk b'IEND' claims "
                                       "4294967295 bytes")
    assert res["empty_batch"].startswith("InputError: the batch (0, 3, 4, 4) holds no image")
    assert res["zero_height"].startswith("InputError: the image (0, 5, 3) is empty")
    assert res["zero_height_chw"].startswith("InputError: the image (3, 0, 5) is empty")
    assert res["dir_weights"].startswith("IsADirectoryError") and "give the path of a weights file" in res["dir_weights"]
    assert res["loop_cfg"].startswith("OSError") and "loop of symbolic links" in res["loop_cfg"]
    assert res["empty_cfg"].startswith("FileNotFoundError") and "the cfg path is empty" in res["empty_cfg"]
    assert res["empty_weights"].startswith("FileNotFoundError") and "weights path is empty" in res["empty_weights"]
