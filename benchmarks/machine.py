"""One line naming the processor a benchmark ran on, printed above its table: the same build ran
darknet53 at 0.71x OpenVINO's time on one 2-core AMD EPYC (Zen 4) and at 1.0x on the next (Zen 5),
whose AVX-512 units are twice as wide, so a figure says little without the machine it came from."""
import os
from pathlib import Path

try:
    from numpy._core._multiarray_umath import __cpu_features__
except ImportError:  # numpy 1.x
    from numpy.core._multiarray_umath import __cpu_features__


def _cpuinfo():
    """The first processor's fields of /proc/cpuinfo ({} where there is none)."""
    fields = {}
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    except OSError:
        pass
    return fields


def _cache(index):
    """Size of cpu0's cache index (2: L2, 3: L3), as the kernel writes it ('1024K'), or '?'."""
    try:
        return Path(f"/sys/devices/system/cpu/cpu0/cache/index{index}/size").read_text().strip()
    except OSError:
        return "?"


def describe():
    """e.g. 'AMD EPYC (family 26, model 2), 2 CPUs, AVX-512, L2 1024K per core, L3 32768K'."""
    info = _cpuinfo()
    name = info.get("model name", "unknown CPU")
    if "cpu family" in info:
        name += f" (family {info['cpu family']}, model {info.get('model', '?')})"
    isa = "AVX-512" if __cpu_features__.get("AVX512_SKX") else "AVX2" if __cpu_features__.get("AVX2") else "SSE"
    line = f"{name}, {os.cpu_count()} CPUs, {isa}, L2 {_cache(2)} per core, L3 {_cache(3)}"
    coretype = os.environ.get("OPENBLAS_CORETYPE")
    return line + (f", OPENBLAS_CORETYPE={coretype}" if coretype else "")


if __name__ == "__main__":
    print(describe())
