"""The package surface: the namespace holds the public API and submodules only, and the
extension's type stub lists exactly what the extension defines."""
import ast
import inspect
import types
from pathlib import Path

import darknetpy as dn
from darknetpy import _libdarknet


def test_namespace_is_public_api_and_submodules():
    for name in dir(dn):
        if name.startswith("__") and name.endswith("__"):
            continue
        value = getattr(dn, name)
        if isinstance(value, types.ModuleType):
            assert value.__name__ == f"darknetpy.{name}", f"darknetpy.{name} is the stray module {value.__name__}"
        else:
            assert name in dn.__all__, f"darknetpy.{name} is neither public API nor a submodule"
    for name in dn.__all__:
        assert hasattr(dn, name), name


def stub_names():
    tree = ast.parse((Path(dn.__file__).parent / "_libdarknet.pyi").read_text())
    functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    handle = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "NetworkHandle")
    methods = {n.name for n in handle.body if isinstance(n, ast.FunctionDef)} - {"__init__"}
    return functions, methods


def test_stub_matches_extension():
    functions, methods = stub_names()
    runtime = {n for n, v in vars(_libdarknet).items()
               if not n.startswith("_") and callable(v) and not inspect.isclass(v)}
    assert functions == runtime
    assert methods == {n for n in dir(_libdarknet.NetworkHandle) if not n.startswith("_")}


def test_stub_info_keys_match_extension(tmp_path):
    tree = ast.parse((Path(dn.__file__).parent / "_libdarknet.pyi").read_text())
    keys = {n.name: {a.target.id for a in n.body if isinstance(a, ast.AnnAssign)}
            for n in tree.body if isinstance(n, ast.ClassDef)}
    cfg = tmp_path / "n.cfg"
    cfg.write_text("[net]\nwidth=4\nheight=4\nchannels=1\n[maxpool]\nsize=2\nstride=2\n")
    handle = _libdarknet.NetworkHandle(str(cfg), 1)
    assert set(handle.info()) == keys["NetInfo"]
    assert set(handle.layer_info(0)) == keys["LayerInfoDict"]
    handle.close()
