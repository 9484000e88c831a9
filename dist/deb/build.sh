#!/usr/bin/env bash
# Builds the Debian package with cargo-deb and checks it.
#
#   dist/deb/build.sh               # target/debian/spaced_VERSION-1_amd64.deb
#   dist/deb/build.sh --no-build    # reuse the static release binary already built
#
# Steps: cargo-deb (installed with `cargo install` if missing); the static release binary
# (the one the container image ships, dist/container/build.sh); completions, man pages and
# the upstream changelog generated into target/…/release/dist (the assets of
# [package.metadata.deb] in Cargo.toml); `cargo deb`; then `dpkg-deb -c` shows what it
# installs and lintian (Debian: lintian) checks it: any lintian error fails the script,
# warnings are printed. A release build takes minutes, so CI does not run this.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
triple=x86_64-unknown-linux-gnu
release=$CARGO_TARGET_DIR/$triple/release
build=1
[ "${1:-}" = --no-build ] && build=0

fail() { echo "deb/build.sh: $*" >&2; exit 1; }
command -v dpkg-deb >/dev/null || fail "dpkg-deb is missing (apt-get install dpkg)"
command -v lintian >/dev/null || fail "lintian is missing (apt-get install lintian)"
if ! cargo deb --version >/dev/null 2>&1; then
  echo "== cargo install cargo-deb"
  cargo install --locked cargo-deb
fi

if [ "$build" = 1 ]; then
  echo "== static release build ($triple)"
  RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --release --locked --target "$triple" --bin spaced
fi
[ -x "$release/spaced" ] || fail "$release/spaced is missing: run without --no-build"

echo "== completions, man pages, changelog into $release/dist"
dist=$release/dist
rm -rf "$dist" && mkdir -p "$dist/completions" "$dist/man"
"$release/spaced" completions bash >"$dist/completions/spaced.bash"
"$release/spaced" completions zsh >"$dist/completions/_spaced"
"$release/spaced" completions fish >"$dist/completions/spaced.fish"
"$release/spaced" man --out-dir "$dist/man"
# Debian wants man pages and changelogs compressed, reproducibly (-n: no name or time).
gzip -9n "$dist"/man/*.1
gzip -9nc CHANGELOG.md >"$dist/changelog.gz"

echo "== cargo deb"
deb=$(cargo deb --no-build --strip --target "$triple" | tail -n1)
[ -f "$deb" ] || fail "cargo deb printed no package path (got: $deb)"

echo "== dpkg-deb -c $deb"
# Into a variable first: `dpkg-deb -c | grep -q` under pipefail fails when grep stops
# reading early and dpkg-deb gets SIGPIPE.
contents=$(dpkg-deb -c "$deb")
echo "$contents"
dpkg-deb -I "$deb"
for path in ./usr/bin/spaced ./etc/spaced/spaced.toml ./usr/lib/systemd/system/spaced.service \
  ./usr/lib/systemd/system/spaced.socket ./usr/share/man/man1/spaced.1.gz \
  ./usr/share/bash-completion/completions/spaced; do
  grep -q " $path\$" <<<"$contents" || fail "$path is not in the package"
done
conffiles=$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)
grep -qx /etc/spaced/spaced.toml <<<"$conffiles" || fail "/etc/spaced/spaced.toml is not a conffile"
tmp=$(mktemp -d)
dpkg-deb -x "$deb" "$tmp"
# The packaged binary is static and stripped of debug info, and runs.
if readelf -l "$tmp/usr/bin/spaced" | grep -q 'Requesting program interpreter'; then
  fail "the packaged /usr/bin/spaced is not static"
fi
"$tmp/usr/bin/spaced" --version
"$tmp/usr/bin/spaced" check "$tmp/etc/spaced/spaced.toml"
rm -rf "$tmp"

echo "== lintian"
# Errors fail; warnings and info are shown, every instance of each.
set +e
lintian --tag-display-limit 0 --info "$deb"
status=$?
set -e
# lintian exits 1 only on errors (its default --fail-on=error).
[ "$status" = 0 ] || fail "lintian found errors in $deb"
echo "deb/build.sh: ok: $deb"
