"""Detector cfg mistakes people post most: a CfgError naming file:line and the fix, in a child process
(nothing may crash it)."""
import json
import subprocess
import sys
import textwrap

from conftest import package_env

HEAD = "[yolo]\nmask=0,1,2\nanchors=10,13, 16,30, 33,23\nclasses=2\nnum=3\n"
BASE = ("[net]\nwidth=32\nheight=32\nchannels=3\n\n[convolutional]\nfilters=8\nsize=3\nstride=2\npad=1\n"
        "activation=leaky\n\n[convolutional]\nfilters=21\nsize=1\nactivation=linear\n\n" + HEAD)
CASES = {
    # name: (cfg text, line of the section named in the message, what the message says)
    "odd_anchors": (BASE.replace("33,23", "33,23,5"), 18, "odd number"),
    "few_anchors": (BASE.replace("num=3", "num=4"), 18, "num=4 needs 4"),
    "mask_ge_num": (BASE.replace("anchors=10,13, 16,30, 33,23", "anchors=10,13, 16,30, 33,23, 40,40")
                    .replace("mask=0,1,2", "mask=1,2,3"), 18, "mask value 3 is >= num=3"),
    "groups_0": (BASE.replace("filters=8\n", "filters=8\ngroups=0\n"), 6, "groups=0 must be >= 1"),
    "filters": (BASE.replace("filters=21", "filters=24"), 18, "set filters=21"),
}
CHILD = textwrap.dedent("""
    import json, sys
    import darknetpy as dn
    out = {}
    for name, path in json.loads(sys.argv[1]).items():
        try:
            dn.Detector(path, None, **json.loads(sys.argv[2]).get(name, {}))
            out[name] = ["no error", ""]
        except Exception as exc:
            out[name] = [type(exc).__name__, str(exc)]
    print(json.dumps(out))
""")


def test_detector_cfg_lint(tmp_path):
    paths, kwargs = {}, {}
    for name, (text, _, _) in CASES.items():
        paths[name] = str(tmp_path / f"{name}.cfg")
        (tmp_path / f"{name}.cfg").write_text(text)
    good = tmp_path / "good.cfg"
    good.write_text(BASE)
    two_heads = tmp_path / "two_heads.cfg"
    two_heads.write_text(BASE + "\n[route]\nlayers=-3\n\n[convolutional]\nfilters=24\nsize=1\nactivation=linear\n\n"
                         + HEAD.replace("classes=2", "classes=3"))
    (tmp_path / "three.names").write_text("a\nb\nc\n")
    (tmp_path / "c3.data").write_text(f"classes=3\nnames={tmp_path / 'three.names'}\n")
    paths.update(names=str(good), data_classes=str(good), heads=str(two_heads))
    kwargs.update(names={"names": str(tmp_path / "three.names")}, data_classes={"data": str(tmp_path / "c3.data")})
    child = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths), json.dumps(kwargs)], cwd=tmp_path,
                           capture_output=True, text=True, env=package_env(), timeout=120)
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    for name, (_, line, says) in CASES.items():
        kind, message = result[name]
        assert kind == "CfgError", (name, message)
        assert message.startswith(f"{paths[name]}:{line}:") and says in message, (name, message)
    assert result["names"][0] == "CfgError" and "3 names but [yolo] layer 2" in result["names"][1]
    assert result["data_classes"][0] == "CfgError" and "classes=3 but [yolo] layer 2" in result["data_classes"][1]
    assert result["heads"][0] == "CfgError" and "different classes= (2 and 3)" in result["heads"][1]


def test_cli_reports_lint_error_in_one_line(tmp_path):
    cfg = tmp_path / "bad.cfg"
    cfg.write_text(CASES["odd_anchors"][0])
    (tmp_path / "x.data").write_text("classes=2\n")
    child = subprocess.run([sys.executable, "-m", "darknetpy", "detector", "test", str(tmp_path / "x.data"),
                            str(cfg), str(tmp_path / "none.weights"), "img.png"], cwd=tmp_path,
                           capture_output=True, text=True, env=package_env(), timeout=120)
    assert child.returncode == 1 and child.stdout == ""
    assert child.stderr.strip().startswith(f"darknetpy: error: {cfg}:18: ") and "odd number" in child.stderr
