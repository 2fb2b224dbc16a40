#!/usr/bin/env bash
# Builds the two modules of di/wasm/products.c with Debian's clang 14 and lld
# (apt-get install clang lld): products.wasm imports a shared memory (the threaded tfjs build's),
# products-single.wasm an unshared one (the stock single-threaded build's). Both are committed, so
# a new user needs no C toolchain; test/di/wasmProducts.test.ts rebuilds them wherever clang is
# present and checks that they are the committed bytes.
#   bash di/wasm/build.sh [OUT_DIR]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here}"
exports=()
for name in vp_matmul_tn vp_column_sums vp_gelu vp_gelu_grad vp_attention vp_attention_grad vp_normalize vp_normalize_grad vp_layer_norm vp_layer_norm_grad vp_layer_norm_weight_grad vp_sgd vp_adamw vp_ema; do exports+=("-Wl,--export=$name"); done
common=(--target=wasm32 -O3 -msimd128 -nostdlib -fno-builtin -Wl,--no-entry -Wl,--import-memory -Wl,--strip-all "${exports[@]}")
clang "${common[@]}" -matomics -mbulk-memory -Wl,--shared-memory -Wl,--max-memory=4294967296 -o "$out/products.wasm" "$here/products.c"
clang "${common[@]}" -o "$out/products-single.wasm" "$here/products.c"
