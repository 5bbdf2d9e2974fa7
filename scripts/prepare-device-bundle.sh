#!/usr/bin/env bash
# Run HERE (a build machine with npm) before scripts/gpu-check.sh on a GPU machine that has no Node.js
# and no registry. Writes the ignored folder .device/ and compiles dist/; carry both:
#   device run  carry=[".device", "dist"]  command="bash scripts/gpu-check.sh"
# Size: node (xz, ~24 MB) + the node_modules the check needs (vitest, node-addon-api,
# node-api-headers, sharp; xz, ~18 MB) + the addon (xz) plus the tracked tree (~11 MB) stays inside the
# 64 MiB a call may carry.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run build:ts >/dev/null
mkdir -p .device
xz -6 -T0 -c "$(command -v node)" > .device/node.xz
# onnxruntime-node, typescript, the build tools and the formatters are not needed there (the addon is
# built with CMake); the whole carry must stay under 64 MiB.
tar -cJf .device/node_modules.tar.xz --exclude=node_modules/onnxruntime-node --exclude=node_modules/typescript \
  --exclude=node_modules/cmake-js --exclude=node_modules/prebuildify --exclude='node_modules/.cache' \
  --exclude=node_modules/prettier --exclude=node_modules/clang-format --exclude=node_modules/@types node_modules
# The addon as built here (cudart static, SASS for sm_75..100 + PTX): nothing to compile there.
[ -f build/Release/vitmsn.node ] || npm run build:native >/dev/null
xz -6 -T0 -c build/Release/vitmsn.node > .device/vitmsn.node.xz
# The per-op cross-backend test (every Backend op on CUDA fp32/fp16/bf16 vs the scalar references).
[ -f build-cmake/test_engine_backend_ops ] || npm run build:native >/dev/null
xz -6 -T0 -c build-cmake/test_engine_backend_ops > .device/test_engine_backend_ops.xz
du -ch .device/* dist | tail -n 1
