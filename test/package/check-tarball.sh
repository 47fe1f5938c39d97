#!/usr/bin/env bash
# Proves the packed tarball installs and works where there is no toolchain (run by .ci/run after npm test):
#   1. npm pack (prepack builds the prebuilds, prepare builds dist/);
#   2. the tarball carries linux-x64 and linux-arm64 glibc prebuilds needing no symbol newer than GLIBC_2.28,
#      and no dead weight (source maps, tests, TypeScript sources);
#   3. npm install of the tarball into a fresh folder whose path holds '#' and '%', with a PATH that has node
#      and a shell but no C compiler, make or python: the install script finds the prebuild, builds nothing;
#      the shim loads (a memfd is mmapped through it) and the CLI runs from node_modules/.bin;
#   4. the same with --ignore-scripts (pnpm's default): node-gyp-build finds the prebuild at run time;
#   5. without a binary for this platform the first mmap throws NativeShimError NATIVE_MISSING saying what to do.
set -euo pipefail
cd "$(dirname "$0")/../.."
MAX_GLIBC=2.28
start=$SECONDS
work=$(mktemp -d "${TMPDIR:-/tmp}/vfio-bars-tarball-XXXXXX")
trap 'rm -rf "$work"' EXIT
say() { printf 'check-tarball: %s (%ss)\n' "$*" "$((SECONDS - start))"; }
fail() { printf 'check-tarball: FAIL: %s\n' "$*" >&2; exit 1; }

say "npm pack"
npm pack --silent --pack-destination "$work" >/dev/null
tarball=$(ls "$work"/vfio-bars-*.tgz)
listing=$(tar -tzf "$tarball")

say "tarball contents"
for needed in package/bin/vfio-bars.js package/dist/index.js package/dist/index.d.ts package/profiles/qemu-nvme.json \
  package/prebuilds/linux-x64/vfio-bars.glibc.node package/prebuilds/linux-arm64/vfio-bars.glibc.node package/native/vfio_bars.c; do
  grep -qx "$needed" <<<"$listing" || fail "$needed missing from the tarball"
done
dead=$(grep -E '\.map$|^package/(test|src|bench|scripts|examples)/|\.ts$' <<<"$listing" | grep -v '\.d\.ts$' || true)
[ -z "$dead" ] || fail "dead weight in the tarball: $dead"
grep -q 'sourceMappingURL' <(tar -xzOf "$tarball" --wildcards 'package/dist/*.js') && fail "dist/ still points at source maps"
mkdir -p "$work/unpacked" && tar -xzf "$tarball" -C "$work/unpacked"
for file in "$work"/unpacked/package/prebuilds/*/*.glibc.node; do
  newest=$(objdump -T "$file" | grep -o 'GLIBC_[0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)
  [ "$(printf '%s\n%s\n' "$newest" "$MAX_GLIBC" | sort -V | tail -1)" = "$MAX_GLIBC" ] || fail "$file needs GLIBC_$newest > $MAX_GLIBC"
  say "${file#"$work"/unpacked/package/}: newest symbol GLIBC_$newest"
done
musl_node=$(ls "$work"/unpacked/package/prebuilds/linux-x64/*.musl.node 2>/dev/null || true)
if [ -z "$musl_node" ]; then
  say "no musl prebuild (musl-gcc was missing)"
elif command -v musl-gcc >/dev/null; then
  # No musl Node here: a musl program that defines the N-API symbols dlopens the binary with musl's loader, which
  # proves every libc symbol it needs resolves against musl (what Alpine's node does when it loads the addon).
  {
    echo '#include <dlfcn.h>'
    echo '#include <stdio.h>'
    objdump -T "$musl_node" | grep -o 'napi_[a-z0-9_]*' | sort -u | sed 's/.*/void &(void) {}/'
    echo 'int main(int argc, char **argv) { (void)argc; if (!dlopen(argv[1], RTLD_NOW)) { puts(dlerror()); return 1; } return 0; }'
  } >"$work/musl-load.c"
  musl-gcc -rdynamic -o "$work/musl-load" "$work/musl-load.c" && "$work/musl-load" "$musl_node" || fail "the musl prebuild does not load under musl"
  say "musl prebuild loads with musl's dynamic loader"
else
  say "musl prebuild present (not load-tested: no musl-gcc)"
fi

# A PATH with node and the basic tools only: no cc, gcc, make or python (npm and node-gyp would need them to compile).
tools="$work/tools"
mkdir -p "$tools"
for tool in node sh bash env cat ls rm mkdir cp mv ln uname sed grep dirname basename tar gzip; do
  command -v "$tool" >/dev/null && ln -sf "$(command -v "$tool")" "$tools/$tool"
done
npm_cli="$(dirname "$(readlink -f "$(command -v npm)")")/npm-cli.js"
[ -f "$npm_cli" ] || npm_cli="$(npm root -g)/npm/bin/npm-cli.js"
bare() { env -i HOME="$HOME" PATH="$tools" npm_config_cache="$(npm config get cache)" "$@"; }
for missing in cc gcc make python3 python; do bare sh -c "command -v $missing" >/dev/null && fail "$missing is still on the bare PATH"; done

install_into() {
  local dir=$1; shift
  mkdir -p "$dir"
  printf '{ "name": "app", "version": "1.0.0", "private": true, "type": "module" }\n' >"$dir/package.json"
  (cd "$dir" && bare node "$npm_cli" install --no-audit --no-fund --prefer-offline --loglevel=error --silent "$@" "$tarball") \
    || fail "npm install $* of the tarball failed without a toolchain"
}

smoke() {
  local dir=$1
  (cd "$dir" && bare node --input-type=module -e "
    import { realSyscalls } from 'vfio-bars';
    const sys = realSyscalls();
    const fd = sys.memfdCreate('check-tarball', 0);
    sys.ftruncate(fd, BigInt(sys.pageSize()));
    const mapping = sys.mmap(fd, 0n, BigInt(sys.pageSize()), 3);
    sys.munmap(mapping);
    sys.close(fd);
  ") || fail "the shim does not load from $dir"
  local version
  version=$(cd "$dir" && bare ./node_modules/.bin/vfio-bars --version) || fail "the CLI does not run from $dir"
  (cd "$dir" && bare ./node_modules/.bin/vfio-bars plan --profile qemu-nvme --page-size 64K | grep -q 'The problem, and the fix:') \
    || fail "vfio-bars plan does not work from $dir"
  local status=0
  (cd "$dir" && bare ./node_modules/.bin/vfio-bars plan --profile qemu-nvme --page-size 3K 2>/dev/null) || status=$?
  [ "$status" = 2 ] || fail "a usage error exited $status, not 2"
  say "$version: shim loads, CLI runs in '${dir#"$work"/}'"
}

say "npm install without a toolchain"
app="$work/app #1 %41"
install_into "$app"
[ -d "$app/node_modules/vfio-bars/build" ] && fail "the install compiled the shim instead of using the prebuild"
smoke "$app"

say "npm install --ignore-scripts"
install_into "$work/ignore scripts" --ignore-scripts
smoke "$work/ignore scripts"

say "no binary for this platform"
rm -rf "$app/node_modules/vfio-bars/prebuilds"
(cd "$app" && bare node --input-type=module -e "
  import { NativeShimError, realSyscalls } from 'vfio-bars';
  const sys = realSyscalls();
  const fd = sys.memfdCreate('check-tarball', 0);
  try {
    sys.mmap(fd, 0n, 4096n, 3);
    process.exit(1);
  } catch (error) {
    if (!(error instanceof NativeShimError) || error.code !== 'NATIVE_MISSING' || !/npm rebuild vfio-bars/.test(error.message)) throw error;
  }
") || fail "a missing binary is not a NativeShimError NATIVE_MISSING"
say "ok"
