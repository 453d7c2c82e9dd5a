#!/usr/bin/env bash
# The fault suite (see scripts/fault_suite.py and docs/testing.md, "Fault suite"): the
# release worker against fresh emulators with faults injected, a census after each run.
#
#   scripts/fault-suite.sh                         # every scenario, 500 commands, three runs
#   scripts/fault-suite.sh --commands 100 --runs 1 kill throttle
#   PROFILE=debug scripts/fault-suite.sh ...       # the debug build (faster to build)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"
ensure_venv
profile="${PROFILE:-release}"
if [ "$profile" = release ]; then
  cargo build --quiet --release --bin cdf-provisioning
else
  cargo build --quiet --bin cdf-provisioning
fi
target="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
exec "$VENV/bin/python" "$ROOT/scripts/fault_suite.py" --worker "$target/$profile/cdf-provisioning" "$@"
