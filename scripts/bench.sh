#!/usr/bin/env bash
# Benchmarks, rerunnable: the engine (cargo bench), openssl's key generation on the same
# machine (what CDF spawns per device), and end-to-end provisioning through SQS against moto
# with the release worker's CPU time, peak memory and AWS calls per device.
#
#   scripts/bench.sh            # N=200 devices end to end
#   N=500 scripts/bench.sh
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"
N="${N:-200}"

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

echo "== end to end: $N provisionThing commands through SQS against moto (release worker)"
ensure_venv
cargo build --quiet --release --bin cdf-provisioning
bin="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/release/cdf-provisioning"
port="$(free_port)"
pidfile="$STATE_DIR/moto-bench-$port.pid"
trap 'stop_pid "$pidfile"' EXIT
start_moto "$port" "$pidfile"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
stack="bench-$(date +%s)"
"$bin" stack deploy --name "$stack" >"$STATE_DIR/bench.env"
set -a; source "$STATE_DIR/bench.env"; set +a
"$VENV/bin/python" - "$N" <<'PY'
import json, os, sys, boto3
n = int(sys.argv[1])
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
iot = boto3.client("iot", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
sqs = boto3.client("sqs", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
with open("infra/templates/aws-issued.json", "rb") as f:
    s3.put_object(Bucket=os.environ["CDF_BUCKET"], Key="templates/aws-issued.json", Body=f.read())
iot.create_policy(policyName="cdf-example-device", policyDocument=json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
for start in range(0, n, 10):
    entries = [{"Id": str(i), "MessageBody": json.dumps({"schemaVersion": 1, "type": "provisionThing", "idempotencyKey": f"bench-{i}",
               "payload": {"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": f"bench-{i:06d}"}}})}
               for i in range(start, min(start + 10, n))]
    sqs.send_message_batch(QueueUrl=os.environ["CDF_COMMAND_QUEUE"], Entries=entries)
PY
log="$STATE_DIR/moto-$port.log"
count() { grep -cE "$1" "$log" || true; }
requests='"(GET|POST|PUT|DELETE|PATCH|HEAD) /'
iot='"(GET|POST|PUT|DELETE|PATCH) /(things|certificates|policies|principals|thing-groups|attached-policies|keys-and-certificate|target-policies|policy-targets|cacertificate)'
all_before=$(count "$requests"); iot_before=$(count "$iot")
export CDF_WAIT_TIME_SECS=1 CDF_CONCURRENCY="${CONCURRENCY:-16}" CDF_LOG_LEVEL=warn CDF_SHUTDOWN_GRACE_SECS=5
"$bin" worker 2>"$STATE_DIR/bench-worker.log" &
worker=$!
start=$(date +%s.%N)
"$VENV/bin/python" - "$N" <<'PY'
import os, sys, time, boto3
n = int(sys.argv[1])
ddb = boto3.client("dynamodb", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
done = set()
checker_calls = 0
deadline = time.time() + 600
while len(done) < n and time.time() < deadline:
    for i in range(n):
        if i in done:
            continue
        checker_calls += 1
        item = ddb.get_item(TableName=os.environ["CDF_TABLE"], Key={"pk": {"S": f"cmd#bench-{i}"}, "sk": {"S": "cmd"}}).get("Item")
        if item and item["status"]["S"] != "IN_PROGRESS":
            assert item["status"]["S"] == "SUCCEEDED", item
            done.add(i)
    time.sleep(0.2)
print(f"{len(done)} of {n} provisioned")
with open(os.path.join(".local", "bench-checker-calls"), "w") as f:
    f.write(str(checker_calls))
PY
end=$(date +%s.%N)
# CPU time (utime + stime, in clock ticks) and peak resident memory of the worker, from /proc.
ticks=$(getconf CLK_TCK)
cpu=$(awk -v t="$ticks" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$worker/stat")
peak=$(awk '/VmHWM/ { print $2 " " $3 }' "/proc/$worker/status")
kill -TERM "$worker"; wait "$worker" || true
all_calls=$(( $(count "$requests") - all_before - $(cat "$STATE_DIR/bench-checker-calls") ))
iot_calls=$(( $(count "$iot") - iot_before ))
awk -v n="$N" -v s="$start" -v e="$end" 'BEGIN { printf "devices per second end to end: %.1f (%d in %.1f s)\n", n/(e-s), n, e-s }'
echo "worker CPU time: ${cpu} s ($(awk -v c="$cpu" -v n="$N" 'BEGIN { printf "%.1f", c*1000/n }') ms per device); peak resident memory: ${peak}"
awk -v a="$all_calls" -v i="$iot_calls" -v n="$N" 'BEGIN { printf "AWS calls per device: %.1f in all (IoT %.1f; the rest SQS, DynamoDB, S3), the checker'"'"'s own reads excluded\n", a/n, i/n }'
