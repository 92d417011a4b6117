#!/bin/sh
# Leak check of libdarknet: tools/leak_check.c (build/train/save/load/predict/free
# cycles and failed builds and loads) compiled with the engine's sources under
# AddressSanitizer + UBSan; LeakSanitizer fails the run on any block left at exit.
#   tools/leak_check.sh [cycles]     (default 50)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
blas=$(python -c "import scipy_openblas32 as b; print(b.get_include_dir(), b.get_lib_dir(), b.get_library())")
set -- "${1:-50}" $blas
out=$(mktemp -d)
gcc -std=gnu11 -O1 -g -fopenmp -fsanitize=address,undefined -fno-sanitize-recover=undefined \
    -I"$root/libdarknet/include" -I"$root/libdarknet/src" -I"$2" \
    "$root/tools/leak_check.c" "$root"/libdarknet/src/*.c -L"$3" -l"$4" -Wl,-rpath,"$3" -lm -o "$out/leak_check"
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 "$out/leak_check" "$1"
rm -rf "$out"
