#!/usr/bin/env bash
# The example VMM's nested guest, cached like the host kernels: a 4 KiB-page kernel from base.fragment
# plus guest.fragment (its own cache key; the host kernels' keys are untouched), and a busybox initramfs
# (busybox taken from the base initramfs: no extra download). Called by prepare.sh.
# Usage: prepare-guest.sh BASE_INITRAMFS   → prints GUEST_KERNEL=… and GUEST_INITRAMFS=…
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BASE=${1:?base initramfs}
CACHE=${VFIO_BARS_CACHE:-$HOME/.cache/vfio-bars}
mkdir -p "$CACHE/initramfs"
kernel=$(nice -n 10 bash "$HERE/../build-kernel.sh" 4K "$HERE/guest.fragment" | tail -n 1)
echo "GUEST_KERNEL=$kernel"
KEY=$( (basename "$BASE"; cat "$HERE/guest-init") | sha256sum | cut -c1-16)
OUT="$CACHE/initramfs/vmm-guest-$KEY.cpio"
if [ ! -f "$OUT" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && cpio -i --quiet --make-directories bin/busybox < "$BASE")
  root="$work/root"; mkdir -p "$root"/{bin,dev,proc,sys,tmp}
  mv "$work/bin/busybox" "$root/bin/busybox"
  cp "$HERE/guest-init" "$root/init"; chmod 755 "$root/init"
  # Never delete other versions: another checkout sharing this cache may be using them right now.
  (cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) > "$OUT.tmp.$$" && mv "$OUT.tmp.$$" "$OUT"
fi
echo "GUEST_INITRAMFS=$OUT"
