#!/usr/bin/env bash
# Builds the spaced container image (dist/container/Containerfile) from a static binary,
# then shows that the image's own binary works: the sandbox this is developed in cannot
# run containers, so the binary and the policy are copied out of the image (podman
# create + cp, which runs nothing) and run here.
#
#   dist/container/build.sh            # builds localhost/spaced:VERSION
#   SPACED_IMAGE=name:tag dist/container/build.sh
#
# Needs: cargo, podman (Debian: podman), objcopy (binutils). A release build takes minutes: not run by CI.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
triple=x86_64-unknown-linux-gnu
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
image=${SPACED_IMAGE:-localhost/spaced:$version}
ctx=$CARGO_TARGET_DIR/container/context
out=$CARGO_TARGET_DIR/container/extracted

fail() { echo "container/build.sh: $*" >&2; exit 1; }
command -v podman >/dev/null || fail "podman is missing (apt-get install podman)"

# glibc, statically linked: no musl toolchain can be fetched here, and static glibc runs
# on scratch. --target keeps the flag off build scripts and proc-macros (which must stay
# dynamic), and puts the binary in its own directory. Static glibc cannot dlopen NSS
# modules, which spaced does not need: since glibc 2.34 the files and dns lookups that
# getaddrinfo uses (the egress resolving a destination) are inside libc itself.
echo "== static release build ($triple)"
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
  cargo build --release --locked --target "$triple" --bin spaced
bin=$CARGO_TARGET_DIR/$triple/release/spaced

echo "== is it static?"
# No program interpreter (PT_INTERP) and no needed shared library: it runs with no libc.
if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
  fail "$bin has a program interpreter: not static"
fi
if readelf -d "$bin" | grep -q '(NEEDED)'; then
  readelf -d "$bin" | grep '(NEEDED)' >&2
  fail "$bin needs shared libraries: not static"
fi
file "$bin"

echo "== build context $ctx"
rm -rf "$ctx" && mkdir -p "$ctx"
# Debug info off (the release profile keeps it for profiling: 2/3 of the file); the
# symbols stay, so a backtrace still names functions.
objcopy --strip-debug "$bin" "$ctx/spaced"
cp dist/container/spaced.toml "$ctx/spaced.toml"
printf 'root:x:0:0:root:/:/sbin/nologin\nspaced:x:65532:65532:spaced:/nonexistent:/sbin/nologin\n' >"$ctx/passwd"
printf 'root:x:0:\nspaced:x:65532:\n' >"$ctx/group"

echo "== podman build -t $image"
podman build --quiet -f dist/container/Containerfile -t "$image" "$ctx"
podman image inspect "$image" --format 'user={{.Config.User}} entrypoint={{.Config.Entrypoint}} cmd={{.Config.Cmd}} volumes={{.Config.Volumes}} size={{.Size}}'

echo "== the image's binary, copied out and run here"
rm -rf "$out" && mkdir -p "$out"
# --image-volume=ignore: no anonymous volume over /etc/spaced, which would hide the
# image's own policy from `podman cp` (a volume is filled only when the container runs).
cid=$(podman create --image-volume=ignore "$image")
trap 'podman rm -f "$cid" >/dev/null 2>&1 || true' EXIT
podman cp "$cid:/usr/bin/spaced" "$out/spaced"
podman cp "$cid:/etc/spaced/spaced.toml" "$out/spaced.toml"
cmp "$out/spaced" "$ctx/spaced" || fail "the image holds another binary than the one built"
"$out/spaced" --version
"$out/spaced" check "$out/spaced.toml"
# The closest this machine gets to running the image: its binary alone under chroot, as
# uid 65532, with nothing else in the file system (no libc, no NSS modules, no shell).
if [ "$(id -u)" = 0 ] && command -v chroot >/dev/null; then
  jail=$CARGO_TARGET_DIR/container/jail
  rm -rf "$jail" && mkdir -p "$jail"
  podman export "$cid" | tar -C "$jail" -x
  chroot --userspec=65532:65532 "$jail" /usr/bin/spaced check /etc/spaced/spaced.toml
fi
echo "container/build.sh: ok: $image"
