#!/usr/bin/env bash
# Checks what dist/ and deploy/ ship, without a release build (CI runs this from .ci/run):
#   1. the systemd units: `systemd-analyze verify` accepts them (any complaint fails), and
#      `systemd-analyze security` rates the service's exposure at most 2.5 ("OK");
#   2. every Kubernetes manifest in deploy/kubernetes validates, strictly (unknown fields
#      are errors), against the Kubernetes schemas, offline (kubernetes-validate ships
#      them; it is installed into a venv under target/ when missing);
#   3. every policy shipped (the .deb's, the image's, each ConfigMap's) passes `spaced check`;
#   4. the packaging scripts parse, and the completions and man pages they package are
#      generated.
# Needs: systemd (systemd-analyze), python3 with venv (python3-venv), a built spaced (the
# debug one from `cargo build`, built here when missing; SPACED_BIN picks another).
# Every failure is fatal and says what failed. SYSTEMD_ANALYZE="env LD_LIBRARY_PATH=… DIR/systemd-analyze"
# runs another systemd's analyzer (a newer one, unpacked from bookworm-backports, knows
# Type=notify-reload).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
work=$CARGO_TARGET_DIR/dist-check
rm -rf "$work" && mkdir -p "$work"

fail() { echo "dist/check.sh: FAILED: $*" >&2; exit 1; }
step() { printf '\n--- %s\n' "$*"; }
need() { command -v "$1" >/dev/null 2>&1 || fail "$1 is missing (Debian package: $2)"; }

sa=${SYSTEMD_ANALYZE:-systemd-analyze}
[ -n "${SYSTEMD_ANALYZE:-}" ] || need systemd-analyze systemd
need python3 python3

bin=${SPACED_BIN:-$CARGO_TARGET_DIR/debug/spaced}
if [ ! -x "$bin" ]; then
  step "cargo build --bin spaced (no $bin yet)"
  cargo build -q --bin spaced
fi
[ -x "$bin" ] || fail "no spaced binary at $bin"

step "systemd-analyze verify dist/systemd/spaced.service dist/systemd/spaced.socket"
# An image of the installed layout: the units where the .deb puts them, /usr/bin/spaced
# (verify checks that ExecStart= is executable), and the host's targets and slices the
# units refer to.
sdroot=$work/sdroot
mkdir -p "$sdroot/usr/bin" "$sdroot/usr/lib/systemd/system"
cp "$bin" "$sdroot/usr/bin/spaced"
cp dist/systemd/spaced.service dist/systemd/spaced.socket "$sdroot/usr/lib/systemd/system/"
for unit in /usr/lib/systemd/system/*.target /usr/lib/systemd/system/*.slice; do
  [ -e "$unit" ] && cp -P "$unit" "$sdroot/usr/lib/systemd/system/"
done
sd_version=$($sa --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p')
set +e
$sa verify --man=no --root="$sdroot" spaced.socket spaced.service >"$work/verify.out" 2>&1
verify_status=$?
set -e
cat "$work/verify.out"
complaints=$work/verify.complaints
cp "$work/verify.out" "$complaints"
if [ "${sd_version:-0}" -lt 253 ]; then
  # Type=notify-reload arrived in systemd 253; an older systemd-analyze warns about that
  # one line and is otherwise still a full check. Any other complaint still fails.
  echo "(systemd $sd_version predates Type=notify-reload: its warning about it is expected)"
  grep -v 'Failed to parse service type, ignoring: notify-reload' "$work/verify.out" >"$complaints" || true
fi
[ "$verify_status" = 0 ] || fail "systemd-analyze verify exited $verify_status"
[ ! -s "$complaints" ] || fail "systemd-analyze verify complained (above)"
echo "units: ok (systemd $sd_version)"

step "systemd-analyze security spaced.service (at most 2.5)"
set +e
$sa security --offline=yes --root="$sdroot" --threshold=25 --no-pager spaced.service >"$work/security.out" 2>&1
security_status=$?
set -e
grep -E 'Overall exposure' "$work/security.out" || cat "$work/security.out"
[ "$security_status" = 0 ] || fail "spaced.service is more exposed than 2.5 (full table: $work/security.out)"

step "kubernetes-validate --strict deploy/kubernetes/*.yaml (offline)"
venv=${SPACED_DIST_VENV:-$CARGO_TARGET_DIR/dist-venv}
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv" || fail "python3 -m venv failed (Debian package: python3-venv)"
  "$venv/bin/pip" install --quiet --disable-pip-version-check kubernetes-validate ||
    fail "pip install kubernetes-validate failed"
fi
# The schemas are in the package: this step makes no network request.
"$venv/bin/kubernetes-validate" --strict --quiet deploy/kubernetes/*.yaml ||
  fail "a Kubernetes manifest does not validate (above)"
echo "manifests: ok ($(ls deploy/kubernetes/*.yaml | wc -l) files)"

step "spaced check on every shipped policy"
"$bin" check dist/deb/spaced.toml || fail "dist/deb/spaced.toml"
"$bin" check dist/container/spaced.toml || fail "dist/container/spaced.toml"
# Each ConfigMap's spaced.toml, with the Secret's files written where egress_token_file
# names them (the mount path, /var/run/secrets/spaced, moved under $work).
"$venv/bin/python" - "$work/k8s" deploy/kubernetes/*.yaml <<'PY' || fail "could not extract the ConfigMaps' policies"
import os, sys, yaml
out, files = sys.argv[1], sys.argv[2:]
secrets = os.path.join(out, "secrets")
os.makedirs(secrets, exist_ok=True)
for path in files:
    with open(path) as f:
        for doc in yaml.safe_load_all(f):
            if not doc:
                continue
            name = doc["metadata"]["name"]
            if doc["kind"] == "Secret":
                for key, value in doc.get("stringData", {}).items():
                    with open(os.path.join(secrets, key), "w") as s:
                        s.write(value)
            elif doc["kind"] == "ConfigMap":
                for key, value in doc.get("data", {}).items():
                    if key.endswith(".toml"):
                        os.makedirs(os.path.join(out, name), exist_ok=True)
                        value = value.replace("/var/run/secrets/spaced/", secrets + "/")
                        with open(os.path.join(out, name, key), "w") as s:
                            s.write(value)
                        print(os.path.join(out, name, key))
PY
# The ConfigMaps use the keys of shared/spec/OPERATIONS.md "The process" ([admin]
# probe_listen, [daemon], egress_token_file). A spaced built before them rejects those
# keys: that is a skip with the reason outside CI, a failure under CI=true.
printf '[space]\nname = "probe"\n[admin]\nlisten = "127.0.0.1:9901"\nprobe_listen = []\n[daemon]\nshutdown_delay = "0s"\n' >"$work/keys.toml"
if "$bin" check "$work/keys.toml" >/dev/null 2>&1; then
  for policy in "$work"/k8s/*/spaced.toml; do
    "$bin" check "$policy" || fail "$policy (from deploy/kubernetes)"
  done
elif [ "${CI:-}" = true ]; then
  "$bin" check "$work/keys.toml" || true
  fail "this spaced does not know [admin] probe_listen / [daemon] (above): the ConfigMaps cannot be checked"
else
  echo "SKIPPED the ConfigMaps' policies: this spaced does not know [admin] probe_listen / [daemon] yet"
fi

step "packaging scripts and what they generate"
for script in dist/check.sh dist/deb/build.sh dist/container/build.sh; do
  bash -n "$script" || fail "$script does not parse"
done
for shell in bash zsh fish; do
  "$bin" completions "$shell" | grep -q 'check' || fail "spaced completions $shell"
done
"$bin" man --out-dir "$work/man" || fail "spaced man --out-dir"
[ -s "$work/man/spaced.1" ] && [ -s "$work/man/spaced-run.1" ] || fail "spaced man wrote no pages"
# Every asset of [package.metadata.deb] that is not generated exists.
for asset in dist/deb/spaced.toml config/example.toml README.md docs/operations.md \
  dist/systemd/spaced.service dist/systemd/spaced.socket LICENSE CHANGELOG.md; do
  [ -f "$asset" ] || fail "$asset (packaged by [package.metadata.deb]) is missing"
done

echo
echo "dist/check.sh: ok"
