#!/usr/bin/env bash
# Benchmarks, rerunnable: the engine (cargo bench), openssl's key generation on the same
# machine (what CDF spawns per device), and the load benchmark: provisioning end to end through
# SQS against moto with the release worker (throughput, CPU time per command, peak memory, the
# emulator's CPU share, AWS calls per command).
#
#   scripts/bench.sh                        # N=5000 commands end to end, 64 in flight
#   N=500 CONCURRENCY=16 scripts/bench.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"
N="${N:-5000}"
CONCURRENCY="${CONCURRENCY:-64}"

echo "== engine (cargo bench --bench engine, release)"
cargo bench --quiet --bench engine 2>/dev/null

echo "== openssl on this machine ($(openssl version))"
for spec in "genrsa 2048" "ecparam -name prime256v1 -genkey -noout"; do
  count=20
  [ "$spec" != "genrsa 2048" ] && count=200
  start=$(date +%s.%N)
  for _ in $(seq "$count"); do openssl $spec >/dev/null 2>&1; done
  end=$(date +%s.%N)
  awk -v n="$count" -v s="$start" -v e="$end" -v name="openssl $spec" \
    'BEGIN { printf "%-48s %12.1f /s  %10.1f µs/op  (n=%d, a process each, as CDF spawns)\n", name, n/(e-s), (e-s)*1e6/n, n }'
done

echo "== end to end: $N provisionThing commands through SQS against moto, $CONCURRENCY in flight (release worker)"
ensure_venv
cargo build --quiet --release --bin cdf-provisioning
target="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
# The fault suite's `load` scenario: no faults, progress read from the events queue (the
# emulator is not polled for records), a census of IoT, DynamoDB and the events at the end.
"$VENV/bin/python" "$ROOT/scripts/fault_suite.py" --worker "$target/release/cdf-provisioning" \
  --commands "$N" --runs 1 --concurrency "$CONCURRENCY" --window "$((CONCURRENCY * 10))" --timeout 3600 load
