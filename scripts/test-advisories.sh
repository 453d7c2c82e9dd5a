#!/usr/bin/env bash
# Tests scripts/advisories.sh: a throwaway crate pinning smallvec 1.6.0 (RUSTSEC-2021-0003, buffer
# overflow in SmallVec::insert_many; smallvec has no dependencies) must be flagged, and the
# repository's Cargo.lock must pass. Uses whichever database advisories.sh picks (the live one,
# else the snapshot); pass --offline to test the snapshot even where the live one is reachable.
# Where advisories.sh has no database at all it says NOT CHECKED, and so does this test.
#
# Usage: scripts/test-advisories.sh [--offline]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
check="$ROOT/scripts/advisories.sh"
crate="smallvec"
version="1.6.0"
advisory="RUSTSEC-2021-0003"
for arg in "$@"; do
  [ "$arg" = "--offline" ] || { echo "test-advisories.sh: unknown argument '$arg' (usage: test-advisories.sh [--offline])" >&2; exit 2; }
done

probe="$(mktemp -d "${TMPDIR:-/tmp}/cdf-advisory-probe.XXXXXX")"
trap 'rm -rf "$probe"' EXIT
mkdir -p "$probe/src"
: >"$probe/src/lib.rs"
cat >"$probe/Cargo.toml" <<EOF
[package]
name = "advisory-probe"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
$crate = "=$version"
EOF
cargo generate-lockfile --quiet --manifest-path "$probe/Cargo.toml"

# The source advisories.sh names in its last line: "(live database)", "(snapshot 2026-08-21)".
source_of() { tail -n 1 "$1" | grep -oE '\([^()]*\)$' || true; }

set +e
"$check" --manifest-path "$probe/Cargo.toml" "$@" >"$probe/vulnerable.out" 2>&1
vulnerable_status=$?
set -e
if grep -q "advisories NOT CHECKED" "$probe/vulnerable.out"; then
  cat "$probe/vulnerable.out"
  echo "!!! advisories test NOT CHECKED: no advisory database, so $crate $version could not be checked !!!"
  exit 0
fi
if [ "$vulnerable_status" -eq 0 ] || ! grep -q "$advisory" "$probe/vulnerable.out"; then
  cat "$probe/vulnerable.out"
  echo "advisories test FAILED: $crate $version was not flagged with $advisory (exit $vulnerable_status)"
  exit 1
fi
echo "advisories test: $crate $version flagged $advisory $(source_of "$probe/vulnerable.out")"

set +e
"$check" --manifest-path "$ROOT/Cargo.toml" "$@" >"$probe/lock.out" 2>&1
lock_status=$?
set -e
if [ "$lock_status" -ne 0 ] || ! grep -q "^advisories ok" "$probe/lock.out"; then
  cat "$probe/lock.out"
  echo "advisories test FAILED: Cargo.lock did not pass (exit $lock_status)"
  exit 1
fi
echo "advisories test: Cargo.lock passes $(source_of "$probe/lock.out")"
