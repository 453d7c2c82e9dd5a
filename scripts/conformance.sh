#!/usr/bin/env bash
# Property-based conformance of the REST facade against its contract (schemas/openapi.yaml, served as /openapi.json):
# schemathesis generates requests for every operation and checks that none answers 5xx and
# that every answer matches the documented status codes, content types and schemas. The
# facade runs on the emulator with the stack deployed and the example templates uploaded.
#
#   scripts/conformance.sh [BINARY]     # the debug binary by default; called by scripts/test.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"
ensure_venv
bin="${1:-}"
if [ -z "$bin" ]; then
  cargo build --quiet --bin cdf-provisioning
  bin="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/cdf-provisioning"
fi
port="$(free_port)"
api_port="$(free_port)"
pidfile="$STATE_DIR/moto-conformance-$port.pid"
api_pidfile="$STATE_DIR/api-conformance-$api_port.pid"
trap 'stop_pid "$api_pidfile"; stop_pid "$pidfile"' EXIT
start_moto "$port" "$pidfile"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
"$bin" stack deploy --name "conformance-$(date +%s)" >"$STATE_DIR/conformance.env"
set -a; source "$STATE_DIR/conformance.env"; set +a
for template in infra/templates/*.json; do
  "$bin" template upload "$(basename "$template" .json)" "$template" >/dev/null 2>&1
done
"$VENV/bin/python" - <<'PY'
import json, os, boto3
iot = boto3.client("iot", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
iot.create_policy(policyName="cdf-example-device", policyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
PY
CDF_LOG_LEVEL=warn "$bin" api --bind "127.0.0.1:$api_port" 2>"$STATE_DIR/conformance-api.log" &
echo $! >"$api_pidfile"
"$VENV/bin/python" -c "
import time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen('http://127.0.0.1:$api_port/health', timeout=1); break
    except Exception: time.sleep(0.1)
"
"$VENV/bin/schemathesis" run "http://127.0.0.1:$api_port/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --header "Accept: application/vnd.aws-cdf-v1.0+json" \
  --max-examples "${CONFORMANCE_EXAMPLES:-25}" --seed 1 --generation-database none \
  --phases examples,coverage,fuzzing --workers 1 --warnings off
