"""Run fuzz inputs through a target's check() without atheris:

    python tests/fuzz/replay.py fuzz_cfg FILE_OR_DIR...

Each input's path is printed before it runs, so a crash (or a sanitizer report when
run under tools/sanitize.sh's build, see tests/fuzz/README.md) names its input."""
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def inputs(paths):
    for path in paths:
        if os.path.isdir(path):
            yield from sorted(os.path.join(path, name) for name in os.listdir(path))
        else:
            yield path


def main(target: str, paths) -> int:
    common.load()
    check = importlib.import_module(target).check
    n = 0
    for path in inputs(paths):
        print(f"replay {path}", file=sys.stderr, flush=True)
        with open(path, "rb") as f:
            check(f.read())
        n += 1
    print(f"replayed {n} inputs through {target}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
