#!/bin/sh
# Build darknetpy for fuzzing into build-fuzz/: GCC's trace-pc coverage, fed to libFuzzer
# through cov_shim.c, and UBSan. (GCC's ASan runtime would shadow libFuzzer's coverage
# hooks, so memory errors are caught by replaying the corpus under tools/sanitize.sh's
# build: tests/fuzz/replay.sh.) tests/fuzz/run.sh calls this when build-fuzz/ is missing.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
out=$root/build-fuzz
rm -rf "$out"
mkdir -p "$out/lib"
cp -r "$root/darknetpy" "$out/lib/"
rm -f "$out/lib/darknetpy/"*.so
cd "$root"
CFLAGS="-fsanitize-coverage=trace-pc -fsanitize=undefined -fno-sanitize-recover=undefined -g" \
LDFLAGS="-fsanitize=undefined" \
    python setup.py -q build_ext --build-lib "$out/lib" --build-temp "$out/tmp" -j2 2>&1 |
    grep -iE "error|warning: " | grep -v FutureWarning || true
gcc -O2 -shared -fPIC "$root/tests/fuzz/cov_shim.c" -o "$out/libdn_cov.so"
echo "built $out"
