"""The package surface: the namespace holds the public API and submodules only, and the
extension's type stub lists exactly what the extension defines."""
import ast
import inspect
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest

import darknetpy as dn
from conftest import package_env
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


def test_training_modules_load_at_first_use():
    """A process that only runs networks holds no training or validation modules; the names
    still resolve (and then stay) in the namespace, whichever is imported first."""
    code = ("import sys, darknetpy as dn; lazy = ('train', 'detector_train', 'validation', 'detector_eval', "
            "'anchors', 'memory', 'parallel', 'training')\n"
            "print(sorted(m for m in lazy if 'darknetpy.' + m in sys.modules))\n"
            "f = dn.train_classifier\n"
            "print('darknetpy.train' in sys.modules, dn.train_classifier is f, 'train_classifier' in vars(dn))\n"
            "import importlib, types; [importlib.import_module('darknetpy.' + m) for m in lazy]\n"
            "print([n for n in dn.__all__ if n != 'cuda' and isinstance(getattr(dn, n), types.ModuleType)])")
    out = subprocess.run([sys.executable, "-c", code], env=package_env(), cwd=tempfile.gettempdir(),
                         capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "True True True"
    assert out[2] == "[]"  # no submodule, imported first, hides a name of the API
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        dn.nope
