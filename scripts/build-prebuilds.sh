#!/usr/bin/env bash
# Builds the N-API shim for every platform the packed tarball carries (run by `npm pack` through prepack):
#   prebuilds/linux-x64/vfio-bars.glibc.node    x86-64, glibc 2.28+ (no symbol newer than 2.28, checked below)
#   prebuilds/linux-arm64/vfio-bars.glibc.node  aarch64, glibc 2.28+ (cross-built: gcc-aarch64-linux-gnu)
#   prebuilds/linux-x64/vfio-bars.musl.node     x86-64 musl (Alpine), only when musl-gcc (Debian musl-tools) exists
# node-gyp-build picks the file whose tags match the running Node; N-API keeps one binary per platform valid for
# every Node version. prebuildify builds in (and empties) <cwd>/build, so it runs in a scratch copy of the sources:
# the developer's own build/ (which node-gyp-build prefers to prebuilds/) stays as it was.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX_GLIBC=2.28
bin=node_modules/.bin/prebuildify
# npm hands its bundled node-gyp (and its nodedir config) to scripts; prebuildify finds it through this variable.
if [ -z "${npm_config_node_gyp:-}" ]; then
  echo "build-prebuilds: run me through npm (npm run prebuilds), which provides node-gyp" >&2
  exit 1
fi

bin=$(realpath "$bin")
scratch=$(mktemp -d "${TMPDIR:-/tmp}/vfio-bars-prebuilds-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
cp -r package.json binding.gyp native "$scratch/"

"$bin" --cwd "$scratch" --napi --strip --tag-libc
PREBUILD_STRIP_BIN=aarch64-linux-gnu-strip CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-gcc \
  "$bin" --cwd "$scratch" --napi --strip --tag-libc --arch arm64
if command -v musl-gcc >/dev/null; then
  # musl's headers first; <linux/kvm.h> and <asm/...> are libc-independent, taken from the system after them.
  CFLAGS="-idirafter /usr/include -idirafter /usr/include/$(gcc -print-multiarch)" CC=musl-gcc CXX=musl-gcc LINK=musl-gcc \
    "$bin" --cwd "$scratch" --napi --strip --tag-libc --libc musl
else
  echo "build-prebuilds: musl-gcc not found (Debian: apt-get install musl-tools); no musl prebuild" >&2
fi
rm -rf prebuilds
mv "$scratch/prebuilds" prebuilds

# The glibc builds must not need a symbol version newer than MAX_GLIBC, or they fail to load on older systems.
for file in prebuilds/*/*.glibc.node; do
  newest=$(objdump -T "$file" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  if [ "$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -1)" != "$MAX_GLIBC" ]; then
    echo "build-prebuilds: $file needs GLIBC_$newest, newer than $MAX_GLIBC" >&2
    exit 1
  fi
  echo "build-prebuilds: $file (newest symbol version GLIBC_$newest)"
done
