#!/usr/bin/env bash
# REST facade benchmark (scripts/bench_api.py): GET /things/{thingName} per second and latency
# on the emulator, next to the emulator's own capacity for the same IoT calls.
#
#   scripts/bench-api.sh                      # CONCURRENCY=16 SECONDS_PER_LOAD=20 THINGS=20
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"
ensure_venv
cargo build --quiet --release --bin cdf-provisioning
target="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$VENV/bin/python" "$ROOT/scripts/bench_api.py" "$target/release/cdf-provisioning"
