#!/usr/bin/env bash
# The GPU verification, in one command on a machine with an NVIDIA GPU (H100, CUDA 13 toolkit with
# cuBLAS, PyTorch + transformers, no Node.js, no network), from the repo root, after
# scripts/prepare-device-bundle.sh here and with .device/ and dist/ carried. Steps:
#   1. cuBLASLt declarations vs the real headers (static_asserts)
#   2. build the addon with CMake + nvcc (sm_90) and cuBLASLt found at run time
#   3. the GPU tests (vitest: goldens in fp32/fp16/bf16, lifecycle) and the CPU goldens
#   4. parity and speed against transformers' ViTMSNModel on the same weights and inputs:
#      scripts/gpu_reference.py (float64 reference, HF fp32/fp16/bf16 errors, eager/sdpa/compile timings)
#      then bench/gpu-vs-torch.mjs (vitmsn on the same inputs), printing one table.
# Writes logs and results to $OUT (or a temp dir). Budget: well under 10 minutes.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$(mktemp -d)}
status=0
step() { echo; echo "== $* ($(date +%T))"; }
fail() { echo "!! $*"; status=1; }

step "node"
mkdir -p /tmp/vitmsn-node && xz -dc .device/node.xz > /tmp/vitmsn-node/node && chmod +x /tmp/vitmsn-node/node || { echo "no .device/node.xz: run scripts/prepare-device-bundle.sh and carry .device"; exit 2; }
export PATH=/tmp/vitmsn-node:$PATH
[ -d node_modules ] || tar -xJf .device/node_modules.tar.xz
node --version; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

step "1. cuBLASLt ABI check against the real headers"
g++ -std=c++17 -fsyntax-only -Inative -I/usr/local/cuda/include native/tests/cublaslt_abi_check.cc && echo "ABI ok" || fail "ABI check"

step "2. build (CMake + nvcc, sm_90)"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DVITMSN_NODE_API_INCLUDE="$PWD/node_modules/node-api-headers/include;$PWD/node_modules/node-addon-api" >"$OUT/cmake.log" 2>&1 \
  && cmake --build build-gpu >>"$OUT/cmake.log" 2>&1 || { tail -40 "$OUT/cmake.log"; echo "build failed"; exit 1; }
mkdir -p build/Release && cp build-gpu/vitmsn.node build/Release/vitmsn.node
ln -sfn build-gpu build-cmake   # test/native.test.ts finds the native tests here
node -e "for (const b of require('./dist/index.js').backends()) console.log(b.name, b.available, b.detail)"

step "3. GPU tests + CPU goldens + native tests"
node node_modules/vitest/vitest.mjs run test/gpu.test.ts test/golden.test.ts test/native.test.ts 2>&1 | tee "$OUT/vitest.log" | tail -40
[ "${PIPESTATUS[0]}" = 0 ] || fail "vitest"

step "4. parity and speed vs transformers"
PYTHONUNBUFFERED=1 timeout 330 python3 scripts/gpu_reference.py --out "$OUT/ref" 2>&1 | tee "$OUT/reference.log" | tail -30
[ "${PIPESTATUS[0]}" = 0 ] || fail "gpu_reference.py"
timeout 150 node bench/gpu-vs-torch.mjs --ref "$OUT/ref" --record "$OUT/gpu-results.md" 2>&1 | tee "$OUT/bench.log"
[ "${PIPESTATUS[0]}" = 0 ] || fail "gpu-vs-torch"
echo; echo "== done: status $status, results in $OUT"
exit $status
