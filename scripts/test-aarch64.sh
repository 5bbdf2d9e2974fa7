#!/bin/sh
# Cross-builds the native kernel tests for aarch64 and runs them under qemu-user, so the NEON path
# (and the portable one) is checked on an x86 machine too. Needs: node, g++-aarch64-linux-gnu, qemu-user
# (Debian: apt-get install g++-aarch64-linux-gnu qemu-user). Not part of `npm test`. OPT (default -O2)
# is the optimisation level: OPT=-O0 also checks that no x86 kernel is referenced from code that
# only dead-code elimination removes (isa_target.h).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${TMPDIR:-/tmp}/vitmsn-aarch64
mkdir -p "$out"
CXX=${CXX_AARCH64:-aarch64-linux-gnu-g++}
OPT=${OPT:--O2}
# The addon's sources for arm64 (scripts/gyp-sources.js: the x86 kernel files are not compiled
# there), less the N-API binding.
rm -f "$out"/*.o
for f in $(cd "$root" && node scripts/gyp-sources.js && echo && node scripts/gyp-sources.js arm64); do
  case "$f" in native/binding/*) continue ;; esac
  "$CXX" -std=c++17 $OPT -Wall -Wextra -I"$root/native" -c "$root/$f" -o "$out/$(echo "$f" | tr / _).o"
done
"$CXX" -std=c++17 $OPT -I"$root/native" "$root/native/tests/test_cpu_ops.cc" "$out"/*.o -lpthread -static \
  -o "$out/test_cpu_ops"
qemu-aarch64 "$out/test_cpu_ops"
