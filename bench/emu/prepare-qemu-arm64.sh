#!/usr/bin/env bash
# Debian's arm64 qemu-system-aarch64 (bookworm: 7.2) as the nested VMM of `npm run bench:emu`: the
# `qemu-system-arm` Depends closure for arm64 is fetched with `apt-get download` under private apt options
# (the machine's own apt state is untouched), extracted with dpkg-deb, and reduced to the binary plus the
# shared libraries it needs, packed as an initramfs overlay (usr/bin/qemu-system-aarch64, lib*/...).
# Cached in $VFIO_BARS_CACHE/bench, keyed by the versions of every package in the closure.
# Usage: prepare-qemu-arm64.sh   → prints QEMU_OVERLAY=<cpio> on its last line.
set -euo pipefail
CACHE=${VFIO_BARS_CACHE:-$HOME/.cache/vfio-bars}
APT="$CACHE/bench/apt"
mkdir -p "$APT/lists/partial" "$APT/cache/archives/partial"
A=(-oAPT::Architecture=arm64 -oAPT::Architectures=arm64 -oDir::State::Lists="$APT/lists"
   -oDir::Cache="$APT/cache" -oDir::State::status=/dev/null -oDebug::NoLocking=1 -oAPT::Sandbox::User=root)
log() { echo "[bench-qemu] $*" >&2; }
command -v aarch64-linux-gnu-readelf >/dev/null || { log "aarch64-linux-gnu-readelf missing: run test/emu/prepare.sh first"; exit 1; }

versions="$APT/versions"
if [ ! -s "$versions" ] || [ -n "${EMU_REFRESH:-}" ]; then
  log "resolving the arm64 qemu-system-arm closure"
  apt-get "${A[@]}" update -q >&2
  apt-cache "${A[@]}" depends --recurse --no-recommends --no-suggests --no-conflicts --no-breaks \
    --no-replaces --no-enhances qemu-system-arm | grep -v '^[ <]' | sort -u > "$APT/pkglist"
  # Name and candidate version of each package: the cache key.
  xargs apt-cache "${A[@]}" policy < "$APT/pkglist" | awk '/^[^ ]/{p=$1; sub(/:$/, "", p)} /Candidate:/{print p, $2}' > "$versions.tmp"
  mv "$versions.tmp" "$versions"
fi
KEY=$(sha256sum < "$versions" | cut -c1-16)
OUT="$CACHE/bench/qemu-arm64-$KEY.cpio"
if [ ! -f "$OUT" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  log "downloading $(wc -l < "$versions") arm64 packages"
  # Packages without an arm64 candidate (virtual or all-arch already resolved) are skipped by apt-get download.
  (cd "$work" && awk '$2 != "(none)" {print $1 "=" $2}' "$versions" | xargs apt-get "${A[@]}" download -q >&2)
  x="$work/x"; mkdir -p "$x"
  for d in "$work"/*.deb; do dpkg-deb -x "$d" "$x"; done
  root="$work/root"; mkdir -p "$root/usr/bin" "$root/lib"
  cp "$x/usr/bin/qemu-system-aarch64" "$root/usr/bin/"
  cp -L "$x/lib/ld-linux-aarch64.so.1" "$root/lib/ld-linux-aarch64.so.1"
  # Breadth-first over DT_NEEDED: every library the binary loads, from the extracted root.
  declare -A seen=()
  queue=("$x/usr/bin/qemu-system-aarch64")
  while [ ${#queue[@]} -gt 0 ]; do
    f=${queue[0]}; queue=("${queue[@]:1}")
    for lib in $(aarch64-linux-gnu-readelf -d "$f" | awk '/NEEDED/{gsub(/[][]/, "", $5); print $5}'); do
      [ -n "${seen[$lib]:-}" ] && continue
      seen[$lib]=1
      found=
      for dir in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu lib usr/lib; do
        if [ -e "$x/$dir/$lib" ]; then found="$dir/$lib"; break; fi
      done
      [ -n "$found" ] || { log "qemu-system-aarch64 needs $lib, which the closure does not hold"; exit 1; }
      mkdir -p "$root/$(dirname "$found")"
      cp -L "$x/$found" "$root/$found"
      queue+=("$x/$found")
    done
  done
  log "qemu-system-aarch64 $(awk '$1 == "qemu-system-arm" {print $2}' "$versions") with ${#seen[@]} shared libraries"
  (cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
  rm -rf "$work"; trap - EXIT
  # Only the current key's overlay is kept.
  find "$CACHE/bench" -maxdepth 1 -name 'qemu-arm64-*.cpio' ! -name "qemu-arm64-$KEY.cpio" -delete
  rm -f "$APT"/cache/archives/*.deb
fi
echo "QEMU_VERSION=$(awk '$1 == "qemu-system-arm" {print $2}' "$versions")"
echo "QEMU_OVERLAY=$OUT"
