#!/usr/bin/env bash
# Builds (or reuses from cache) an arm64 host kernel Image from Debian's linux-source-6.12, with iommufd
# and the VFIO device cdev besides the classic group/type1 container (kernel/linux-6.12.fragment).
# Cache key: the effective fragment, the page size, and the versions of the source and cross toolchain,
# so it never collides with the 6.1 Images of build-kernel.sh (whose keys it leaves untouched).
# Usage: build-kernel-6.12.sh 64K   → prints the cached Image path on its last line.
set -euo pipefail
PAGES=${1:?page size: 4K, 16K or 64K}
case "$PAGES" in 4K|16K|64K) ;; *) echo "bad page size $PAGES" >&2; exit 2;; esac
HERE=$(cd "$(dirname "$0")" && pwd)
CACHE=${VFIO_BARS_CACHE:-$HOME/.cache/vfio-bars}
SOURCE_PKG=linux-source-6.12
mkdir -p "$CACHE/kernels" "$CACHE/work"
# prepare.sh installs the 6.1 toolchain and sources; the 6.12 sources are this script's own dependency.
if ! dpkg-query -W -f='${Status}' "$SOURCE_PKG" 2>/dev/null | grep -q 'install ok installed'; then
  echo "kernel 6.12: installing $SOURCE_PKG" >&2
  (apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$SOURCE_PKG") >&2
fi
FRAG=$(mktemp); trap 'rm -f "$FRAG"' EXIT
# Base options that no longer exist in 6.12 are dropped rather than reported as lost by the check below:
# CONFIG_RANDOM_TRUST_{CPU,BOOTLOADER} (removed in 6.2: trusting them became the default) and
# CONFIG_ARM_GIC_V3_ITS_PCI (folded into CONFIG_ARM_GIC_V3_ITS).
{ grep -Ev '^CONFIG_(RANDOM_TRUST_|ARM_GIC_V3_ITS_PCI=)' "$HERE/kernel/base.fragment"; cat "$HERE/kernel/linux-6.12.fragment"
  echo "CONFIG_ARM64_${PAGES}_PAGES=y"; } > "$FRAG"
KEY=$( (cat "$FRAG"; dpkg-query -W -f='${Version}\n' "$SOURCE_PKG" gcc-aarch64-linux-gnu binutils-aarch64-linux-gnu) \
  | sha256sum | cut -c1-16)
OUT="$CACHE/kernels/Image-6.12-$PAGES-$KEY"
if [ -f "$OUT" ]; then echo "kernel 6.12 $PAGES: cache hit"; echo "$OUT"; exit 0; fi
# One build per key at a time (several worktrees may share this cache): wait for the lock, then look again.
exec 9>"$CACHE/kernels/.lock-6.12-$PAGES-$KEY"
flock 9
if [ -f "$OUT" ]; then echo "kernel 6.12 $PAGES: cache hit (built while waiting)"; echo "$OUT"; exit 0; fi
SRC="$CACHE/work/linux-6.12-$PAGES-$KEY"
if [ ! -f "$SRC/Makefile" ]; then
  rm -rf "$SRC" && mkdir -p "$SRC"
  tar -xf "/usr/src/$SOURCE_PKG.tar.xz" -C "$SRC" --strip-components=1
fi
cd "$SRC"
make -s ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- KCONFIG_ALLCONFIG="$FRAG" allnoconfig
# Every fragment line must have survived Kconfig (a silently dropped option = a useless kernel).
bad=0
while IFS= read -r line; do
  case "$line" in \#*|"") continue;; esac
  grep -qxF "$line" .config || { echo "kernel 6.12 $PAGES: $line did not make it into .config" >&2; bad=1; }
done < "$FRAG"
[ "$bad" = 0 ] || exit 1
echo "kernel 6.12 $PAGES: building (nice; about 6 minutes on 2 idle cores)"
start=$SECONDS
nice make -s ARCH=arm64 CROSS_COMPILE=aarch64-linux-gnu- -j"$(nproc)" Image
echo "kernel 6.12 $PAGES: built in $((SECONDS - start)) s"
cp arch/arm64/boot/Image "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
cd / && rm -rf "$SRC" "$CACHE/kernels/.lock-6.12-$PAGES-$KEY"
echo "$OUT"
