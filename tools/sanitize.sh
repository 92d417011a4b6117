#!/bin/sh
# Build darknetpy with AddressSanitizer + UndefinedBehaviorSanitizer into a separate
# directory (build-asan/, the in-place build is untouched) and run the test suite on it.
#
#   tools/sanitize.sh                 build, then pytest -q -x tests
#   tools/sanitize.sh tests/test_x.py build, then pytest on the given arguments
#   SANITIZE_BUILD_ONLY=1 tools/sanitize.sh    build only (prints the PYTHONPATH to use)
#   SANITIZE_DIR=dir SANITIZE_CFLAGS=...       another directory / extra compiler flags
#                                              (tests/fuzz/build.sh adds coverage this way)
# Any sanitizer report stops the process (halt_on_error), so the test that ran it fails.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${SANITIZE_DIR:-$root/build-asan}
sanitizers="-fsanitize=address,undefined -fno-sanitize-recover=undefined"

rm -rf "$out"
mkdir -p "$out/lib"
cp -r "$root/darknetpy" "$out/lib/"
rm -f "$out/lib/darknetpy/"*.so
cd "$root"
CFLAGS="$sanitizers -fno-omit-frame-pointer -g ${SANITIZE_CFLAGS:-}" LDFLAGS="$sanitizers" \
    python setup.py -q build_ext --build-lib "$out/lib" --build-temp "$out/tmp" -j2 2>&1 |
    grep -iE "error|warning: " | grep -v FutureWarning || true
ls "$out/lib/darknetpy/"_libdarknet*.so >/dev/null

# The interpreter is not instrumented: the ASan runtime must be loaded first, and
# libstdc++ with it so ASan finds the real __cxa_throw (OpenCV throws C++ exceptions).
# Leaks of the interpreter itself are not ours (tools/leak_check.py looks for the engine's).
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libstdc++.so.6)"
ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:${ASAN_OPTIONS:-}
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
PYTHONPATH=$out/lib
export LD_PRELOAD ASAN_OPTIONS UBSAN_OPTIONS PYTHONPATH
if [ -n "${SANITIZE_BUILD_ONLY:-}" ]; then
    echo "PYTHONPATH=$PYTHONPATH LD_PRELOAD=$LD_PRELOAD"
    exit 0
fi
[ $# -gt 0 ] || set -- -q -x tests
exec python -P -m pytest -p no:cacheprovider "$@"
