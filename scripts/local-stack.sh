#!/usr/bin/env bash
# The local stack in one command: moto server on 127.0.0.1, the CloudFormation stack from
# infra/ deployed into it, a demo device, the worker and the REST facade, then a short demo
# of commands going through the queue.
#
#   scripts/local-stack.sh            # up, demo, follow the worker log; Ctrl-C stops everything
#   scripts/local-stack.sh up --detach
#   scripts/local-stack.sh down       # stops what `up --detach` started (by pid)
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"

PORT="${LOCAL_STACK_PORT:-5055}"
API_BIND="${CDF_API_BIND:-127.0.0.1:3004}"
STACK="${LOCAL_STACK_NAME:-cdf-local}"

down() {
  for name in api worker moto; do
    stop_pid "$STATE_DIR/$name.pid"
  done
  echo "local stack stopped"
}

up() {
  local detach="${1:-}"
  mkdir -p "$STATE_DIR"
  if [ -f "$STATE_DIR/moto.pid" ] && kill -0 "$(cat "$STATE_DIR/moto.pid")" 2>/dev/null; then
    echo "a local stack is already running; stop it with: scripts/local-stack.sh down" >&2
    exit 1
  fi
  ensure_venv
  echo "== building"
  cargo build --quiet
  local target bin
  target="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
  bin="$target/debug/cdf-provisioning"

  if [ -z "$detach" ]; then
    trap down EXIT
  fi
  echo "== starting moto server on 127.0.0.1:$PORT"
  start_moto "$PORT" "$STATE_DIR/moto.pid"
  export AWS_ENDPOINT_URL="http://127.0.0.1:$PORT"

  echo "== deploying infra/cloudformation.yaml as stack $STACK"
  "$bin" stack deploy --name "$STACK" >"$STATE_DIR/stack.env"
  cat "$STATE_DIR/stack.env"
  set -a
  # shellcheck disable=SC1091
  source "$STATE_DIR/stack.env"
  set +a
  export CDF_WAIT_TIME_SECS="${CDF_WAIT_TIME_SECS:-5}"

  echo "== seeding the demo device"
  "$VENV/bin/python" scripts/seed_demo.py

  echo "== starting the worker and the REST facade ($API_BIND)"
  "$bin" worker >"$STATE_DIR/worker.log" 2>&1 &
  echo $! >"$STATE_DIR/worker.pid"
  "$bin" api --bind "$API_BIND" >"$STATE_DIR/api.log" 2>&1 &
  echo $! >"$STATE_DIR/api.pid"

  echo "== demo: getThing through the queue"
  "$bin" submit schemas/examples/get-thing.json --key "demo-get-$(date +%s)" --wait
  echo "== demo: updateThingCertificates through the queue"
  "$bin" submit schemas/examples/update-thing-certificates.json --key "demo-suspend-$(date +%s)" --wait
  echo "== demo: provisionThing with the aws-issued example template (key made here, delivered to S3)"
  "$bin" submit schemas/examples/provision-thing.json --key "demo-provision-$(date +%s)" --wait
  echo "== demo: a bulk task of 13 rows (one of them invalid), followed to the end"
  task="$("$bin" bulk submit --template add_thing_to_group --rows infra/templates/rows/add_thing_to_group.csv \
    --key "demo-bulk-$(date +%s)" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["taskId"])')"
  "$bin" bulk watch "$task" || true
  "$bin" bulk results "$task" --failed
  echo "== demo: the same template evaluated without touching AWS"
  "$bin" plan --template infra/templates/ca-signed.json infra/templates/requests/ca-signed.json | tail -n 6
  echo "== demo: a malformed command is dead-lettered with its reason (the worker keeps going)"
  "$VENV/bin/python" - <<PY
import boto3, os
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
sqs.send_message(QueueUrl=os.environ["CDF_COMMAND_QUEUE"], MessageBody='{"schemaVersion":1,"type":"getThing","payload":{"thingName":"bad name"}}')
PY
  echo "== demo: GET /things/sensor-0001 on the REST facade"
  "$VENV/bin/python" - <<PY
import json, time, urllib.request
for _ in range(50):
    try:
        req = urllib.request.Request("http://$API_BIND/things/sensor-0001", headers={"Accept": "application/vnd.aws-cdf-v1.0+json"})
        thing = json.load(urllib.request.urlopen(req, timeout=5))
        for cert in thing["certificates"]:
            cert["certificatePem"] = cert.get("certificatePem", "")[:40] + "..."
        print(json.dumps(thing, indent=2))
        break
    except OSError:
        time.sleep(0.2)
PY
  echo
  echo "Environment for more commands: set -a; source .local/stack.env; set +a; export AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
  echo "Try: $bin submit schemas/examples/delete-thing.json --wait"
  if [ -n "$detach" ]; then
    echo "Running in the background; stop with: scripts/local-stack.sh down"
    trap - EXIT
  else
    echo "Following the worker log; Ctrl-C stops everything."
    tail -n +1 -f "$STATE_DIR/worker.log"
  fi
}

case "${1:-up}" in
  up) up "${2:-}" ;;
  down) down ;;
  *) echo "usage: $0 [up [--detach] | down]" >&2; exit 2 ;;
esac
