#!/bin/sh
# Cross-builds the native kernel tests for aarch64 and runs them under qemu-user, so the NEON path
# (and the portable one) is checked on an x86 machine too. Needs: g++-aarch64-linux-gnu, qemu-user
# (Debian: apt-get install g++-aarch64-linux-gnu qemu-user). Not part of `npm test`.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${TMPDIR:-/tmp}/vitmsn-aarch64
mkdir -p "$out"
CXX=${CXX_AARCH64:-aarch64-linux-gnu-g++}
for f in "$root"/native/cpu/*.cc "$root"/native/engine/*.cc "$root"/native/backend/*.cc; do
  "$CXX" -std=c++17 -O2 -Wall -Wextra -I"$root/native" -c "$f" -o "$out/$(basename "$f").o"
done
"$CXX" -std=c++17 -O2 -I"$root/native" "$root/native/tests/test_cpu_ops.cc" "$out"/*.o -lpthread -static \
  -o "$out/test_cpu_ops"
qemu-aarch64 "$out/test_cpu_ops"
