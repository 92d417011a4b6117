#!/usr/bin/env bash
# Compile libdarknet (engine + CPU kernels, no Python) for aarch64 with Debian's cross
# compiler, to check that the portable code builds there (the x86 dispatch compiles out):
#   apt-get install gcc-aarch64-linux-gnu && tools/check_aarch64.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CC=${CC:-aarch64-linux-gnu-gcc}
BLAS_INCLUDE=$(python -c "import scipy_openblas32; print(scipy_openblas32.get_include_dir())")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
flags=(-O2 -fopenmp -std=gnu11 -Wall -Werror -Wno-unused-function -Wno-unknown-pragmas -ffp-contract=off
       -fPIC -Ilibdarknet/include -Ilibdarknet/src -I"$BLAS_INCLUDE" -DDN_CPU_BASE_ONLY=1)
for src in libdarknet/src/*.c libdarknet/src/cpu/*.c; do
    "$CC" "${flags[@]}" -c "$src" -o "$out/$(basename "${src%.c}")_$(basename "$(dirname "$src")").o"
done
"$CC" -shared -fopenmp -o "$out/libdarknet.so" "$out"/*.o
file "$out/libdarknet.so"
echo "aarch64: libdarknet compiles and links"
