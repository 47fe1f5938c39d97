#!/usr/bin/env bash
# Builds (or reuses from cache) a minimal arm64 kernel Image for one page size: 4K, 16K or 64K.
# Cache key: the fragment, the page size and the versions of the packages that produce the Image.
# Usage: build-kernel.sh 64K [EXTRA_FRAGMENT]   → prints the cached Image path on its last line.
# EXTRA_FRAGMENT (e.g. the nested guest's) is appended to base.fragment; without it the key is unchanged.
set -euo pipefail
PAGES=${1:?page size: 4K, 16K or 64K}
EXTRA=${2:-}
case "$PAGES" in 4K|16K|64K) ;; *) echo "bad page size $PAGES" >&2; exit 2;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VFIO_BARS_CACHE:-$HOME/.cache/vfio-bars}
mkdir -p "$CACHE/kernels" "$CACHE/work"
FRAG=$(mktemp); trap 'rm -f "$FRAG"' EXIT
{ cat "$HERE/kernel/base.fragment"; echo "CONFIG_ARM64_${PAGES}_PAGES=y"; [ -z "$EXTRA" ] || cat "$EXTRA"; } > "$FRAG"
KEY=$( (cat "$FRAG"; dpkg-query -W -f='${Version}\n' linux-source-6.1 gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu) | sha256sum | cut -c1-16)
OUT="$CACHE/kernels/Image-$PAGES-$KEY"
if [ -f "$OUT" ]; then echo "kernel $PAGES: cache hit"; echo "$OUT"; exit 0; fi
SRC="$CACHE/work/linux-$PAGES${EXTRA:+-$KEY}"
if [ ! -f "$SRC/Makefile" ]; then
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar -xf /usr/src/linux-source-6.1.tar.xz -C "$SRC" --strip-components=1
fi
cd "$SRC"
make -s ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- KCONFIG_ALLCONFIG="$FRAG" allnoconfig
# Every fragment line must have survived Kconfig (a silently dropped option = a useless kernel).
bad=0
while IFS= read -r line; do
  case "$line" in \#*|"") continue;; esac
  grep -qxF "$line" .config || { echo "kernel $PAGES: $line did not make it into .config" >&2; bad=1; }
done < "$FRAG"
[ "$bad" = 0 ] || exit 1
echo "kernel $PAGES: building (about 3.5 minutes on 2 cores)"
make -s ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- -j"$(nproc)" Image
cp arch/arm64/boot/Image "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
cd / && rm -rf "$SRC"
echo "$OUT"
