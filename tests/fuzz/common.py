"""Shared parts of the fuzz targets (tests/fuzz/fuzz_*.py).

Each target defines ``check(data: bytes)``: it feeds the input to darknetpy and
returns quietly when darknetpy accepts it or raises one of the documented, typed
errors; anything else (an untyped exception, or the process dying) is a finding.
``check`` needs no atheris, so tests/test_fuzz.py replays saved findings without it.
"""
from __future__ import annotations

import atexit
import collections
import ctypes
import os
import sys
import tempfile

dn = None  # darknetpy, imported by load()
EXPECTED: tuple = ()  # errors a hostile input may cause: darknetpy's own, and the OS's for paths
# networks an input builds may hold this much: bigger ones are refused (OutOfMemoryError) before
# their weights are initialised, so libFuzzer's RSS limit never fires on a legitimate refusal
MAX_MEMORY = 256 << 20


def load(instrument: bool = False) -> None:
    """Import darknetpy (instrumented for atheris' Python coverage when fuzzing)."""
    global dn, EXPECTED
    if instrument:
        import atheris

        with atheris.instrument_imports(include=["darknetpy"]):
            import darknetpy
    else:
        import darknetpy
    dn = darknetpy
    EXPECTED = (dn.DarknetError, OSError)


class Bytes:
    """A tiny FuzzedDataProvider: consumes the input front to back, zeros once it runs out."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def byte(self) -> int:
        self.pos += 1
        return self.data[self.pos - 1] if self.pos <= len(self.data) else 0

    def pick(self, options):
        return options[self.byte() % len(options)]

    def int_in(self, lo: int, hi: int) -> int:
        v = self.byte() | self.byte() << 8
        return lo + v % (hi - lo + 1)

    def rest(self) -> bytes:
        out, self.pos = self.data[self.pos:], len(self.data)
        return out


class Stats:
    """Inputs tried and their outcomes, printed to stderr at every power of two (libFuzzer
    ends the process without running Python's exit handlers)."""

    def __init__(self, name: str):
        self.name, self.tried, self.outcomes = name, 0, collections.Counter()

    def count(self, outcome: str) -> None:
        self.tried += 1
        self.outcomes[outcome] += 1
        if self.tried & (self.tried - 1) == 0 or self.tried % 10000 == 0:
            top = ", ".join(f"{k}: {v}" for k, v in self.outcomes.most_common(8))
            print(f"[{self.name}] inputs tried: {self.tried}; outcomes: {top}", file=sys.stderr, flush=True)


def scratch_file(suffix: str) -> str:
    """A path in a private temporary directory, rewritten for every input."""
    folder = tempfile.mkdtemp(prefix="darknetpy-fuzz-")
    atexit.register(lambda: [os.remove(os.path.join(folder, f)) for f in os.listdir(folder)] and None)
    return os.path.join(folder, "input" + suffix)


def register_c_coverage() -> bool:
    """Hand libFuzzer the C engine's coverage counters when the extension was built by
    tests/fuzz/build.sh (GCC's -fsanitize-coverage=trace-pc feeding tests/fuzz/cov_shim.c,
    preloaded by tests/fuzz/run.sh). Without them only the Python code guides the fuzzer."""
    try:
        scope = ctypes.CDLL(None)
        size = ctypes.c_size_t.in_dll(scope, "dn_cov_size").value
        counters = ctypes.addressof(ctypes.c_uint8.in_dll(scope, "dn_cov_counters"))
        pcs = ctypes.addressof(ctypes.c_size_t.in_dll(scope, "dn_cov_pcs"))
    except (OSError, ValueError):
        return False
    with open("/proc/self/maps") as maps:
        core = next((line.split()[-1] for line in maps if "core_with_libfuzzer" in line), None)
    if core is None:
        return False
    fuzzer = ctypes.CDLL(core)
    fuzzer.__sanitizer_cov_8bit_counters_init(ctypes.c_void_p(counters), ctypes.c_void_p(counters + size))
    fuzzer.__sanitizer_cov_pcs_init(ctypes.c_void_p(pcs), ctypes.c_void_p(pcs + 2 * size * ctypes.sizeof(ctypes.c_size_t)))
    return True


def main(name: str, check, seeds=lambda: ()) -> None:
    """Fuzz ``check`` with atheris: ``python fuzz_x.py [libFuzzer flags] [corpus dirs or files]``.
    ``seeds()`` (bytes) start a fresh corpus when no directory is given."""
    import atheris

    load(instrument=True)
    args = list(sys.argv)
    # a hostile cfg may reserve (not touch) gigabytes: only resident memory is limited
    defaults = {"-rss_limit_mb": "4096", "-malloc_limit_mb": "65536", "-timeout": "20"}
    args += [f"{k}={v}" for k, v in defaults.items() if not any(a.startswith(k + "=") for a in args)]
    given = [a for a in args[1:] if not a.startswith("-")]
    if not any(os.path.isfile(a) or os.path.isdir(a) and os.listdir(a) for a in given):
        corpus = given[0] if given else tempfile.mkdtemp(prefix=f"darknetpy-{name}-corpus-")
        os.makedirs(corpus, exist_ok=True)
        for i, seed in enumerate(seeds()):
            with open(os.path.join(corpus, f"seed{i}"), "wb") as f:
                f.write(seed)
        if not given:
            args.append(corpus)
    first = []

    def one_input(data: bytes) -> None:
        if not first:  # libFuzzer is loaded once fuzzing starts
            first.append(register_c_coverage())
            print(f"[{name}] C coverage: {'on' if first[0] else 'off (Python only)'}", file=sys.stderr)
        check(data)

    atheris.Setup(args, one_input)
    atheris.Fuzz()
