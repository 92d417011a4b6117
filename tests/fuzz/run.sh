#!/bin/sh
# Run a fuzz target on the build of tests/fuzz/build.sh (C coverage + UBSan):
#   tests/fuzz/run.sh fuzz_cfg.py -max_total_time=1800 [corpus_dir]
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
target=$1
shift
[ -f "$root/build-fuzz/libdn_cov.so" ] || "$root/tests/fuzz/build.sh"
LD_PRELOAD=$root/build-fuzz/libdn_cov.so UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
PYTHONPATH=$root/build-fuzz/lib exec python -P "$root/tests/fuzz/$target" "$@"
