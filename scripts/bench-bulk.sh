#!/usr/bin/env bash
# Bulk provisioning end to end against moto, measured side by side in one run:
#  - the emulator's own capacity for the IoT calls of a device, made in a raw loop (boto3), for
#    as many devices as a task has good rows;
#  - a 1,000-row task (aws-issued: a key made here, a certificate from AWS) with invalid rows,
#    run by one worker, then another by two workers: rows per second, and a census (counts,
#    one thing and one ACTIVE certificate per good row, no orphan certificate, nothing
#    dead-lettered); each of these three phases starts from an empty emulator;
#  - the time to accept a 10,000-row task, and the peak memory of accepting 1,000 and 100,000
#    rows from a rows file in S3, and of a worker after a fixed time on each.
# Usage: scripts/bench-bulk.sh            (ROWS=1000 PROFILE=debug|release RUN_SECS=60 LIMITS=lifted|aws MEMORY=1|0 KILLS=0|1 RATES=1|0)
# RATES=0 skips the raw loops and the timed tasks; MEMORY=0 the acceptance and memory phases.
# KILLS=1 adds a task whose worker is SIGKILLed every 15-30 s and restarted, with the census after.
# EMULATORS=split serves IoT from a moto process of its own (AWS_ENDPOINT_URL_IOT) and the other
# services from another, as on AWS, where writing to DynamoDB takes nothing from IoT's capacity;
# by default one moto process serves everything, so every call a row makes competes for it.
# The workers take their settings from the environment (CDF_CONCURRENCY, CDF_RECEIVERS...).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/emulator.sh"
cd "$ROOT"
ROWS="${ROWS:-1000}"
PROFILE="${PROFILE:-debug}"
RUN_SECS="${RUN_SECS:-60}"
ensure_venv
if [ "$PROFILE" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
target="$(cargo metadata --format-version 1 --no-deps | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
bin="$target/$PROFILE/cdf-provisioning"
work="$(mktemp -d)"
port="$(free_port)"
pidfile="$STATE_DIR/moto-bench-bulk-$port.pid"
workers=()
iot_pidfile=""
cleanup() {
  for pid in "${workers[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  stop_pid "$pidfile"
  [ -z "$iot_pidfile" ] || stop_pid "$iot_pidfile"
  rm -rf "$work"
}
trap cleanup EXIT
start_moto "$port" "$pidfile"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" CDF_WAIT_TIME_SECS=1 CDF_LOG_LEVEL=warn
if [ "${EMULATORS:-one}" = split ]; then
  iot_port="$(free_port)"
  while [ "$iot_port" = "$port" ]; do iot_port="$(free_port)"; done
  iot_pidfile="$STATE_DIR/moto-bench-bulk-iot-$iot_port.pid"
  start_moto "$iot_port" "$iot_pidfile"
  export AWS_ENDPOINT_URL_IOT="http://127.0.0.1:$iot_port"
  echo "IoT served by its own emulator process ($AWS_ENDPOINT_URL_IOT), the rest by $AWS_ENDPOINT_URL"
fi
# The client rate limits hold the workers to AWS IoT's default quotas (10/s for
# UpdateCertificate, the binding one here); against the emulator they are lifted, so that the
# workers are measured next to the emulator's own capacity, not next to AWS's quotas. The
# in-memory benchmark (cargo bench --bench bulk) measures the pacing under the real quotas.
# LIMITS=aws keeps them.
if [ "${LIMITS:-lifted}" = lifted ]; then
  lifted=""
  for op in DescribeThing CreateThing AttachThingPrincipal AddThingToThingGroup DescribeThingGroup UpdateCertificate \
    CreateCertificateFromCsr ListCertificates GetPolicy CreatePolicy AttachPolicy DescribeCertificate; do
    lifted="${lifted:+$lifted,}$op=10000"
  done
  export CDF_IOT_RATE_LIMITS="$lifted"
fi
# moto's IoT finds a thing or a certificate by scanning all of them, so every call slows as the
# registry fills: each measured phase starts from an empty emulator (moto's reset API), with
# the stack deployed again, so that the workers and the raw loop meet the same registry sizes.
fresh_emulator() {
  curl -sf -X POST "$AWS_ENDPOINT_URL/moto-api/reset" >/dev/null
  [ -z "${AWS_ENDPOINT_URL_IOT:-}" ] || curl -sf -X POST "$AWS_ENDPOINT_URL_IOT/moto-api/reset" >/dev/null
  "$bin" stack deploy --name bench >"$work/stack.env"
  set -a; source "$work/stack.env"; set +a
  "$VENV/bin/python" - <<'PY'
import json, os, boto3
s3 = boto3.client("s3"); iot = boto3.client("iot")
s3.put_object(Bucket=os.environ["CDF_BUCKET"], Key="templates/aws-issued.json", Body=open("infra/templates/aws-issued.json", "rb").read())
iot.create_policy(policyName="cdf-example-device", policyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
PY
}

# Rows files (1 % invalid rows).
"$VENV/bin/python" - "$work" "$ROWS" <<'PY'
import json, sys
work, rows = sys.argv[1], int(sys.argv[2])
def rows_file(name, n, prefix):
    with open(f"{work}/{name}", "w") as f:
        for i in range(n):
            thing = f"{prefix}-{i}" if i % 100 != 7 else f"{prefix} invalid {i}"
            f.write(json.dumps({"ThingName": thing}) + "\n")
for task in ("one", "two", "kill"):
    rows_file(f"{task}.ndjson", rows, f"bench-{task}")
rows_file("accept.ndjson", 10_000, "accept")
rows_file("small.ndjson", 1_000, "small")
rows_file("large.ndjson", 100_000, "large")
PY

rss_of() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
start_worker() { "$bin" worker >>"$work/worker.log" 2>&1 & workers+=("$!"); }
stop_workers() { for pid in "${workers[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done; workers=(); }
wait_task() { # wait_task TASK_ID: waits until the task ends; prints the seconds it took
  "$VENV/bin/python" - "$1" <<'PY'
import boto3, os, sys, time
ddb, start = boto3.client("dynamodb"), time.time()
key = {"pk": {"S": f"task#{sys.argv[1]}"}, "sk": {"S": "task"}}
while ddb.get_item(TableName=os.environ["CDF_TABLE"], Key=key, ConsistentRead=True)["Item"]["status"]["S"] not in ("Completed", "Cancelled", "Failed"):
    time.sleep(0.5)
print(f"{time.time() - start:.1f}")
PY
}
task_status() { "$VENV/bin/python" -c 'import boto3, os, sys; print(boto3.client("dynamodb").get_item(TableName=os.environ["CDF_TABLE"], Key={"pk": {"S": "task#" + sys.argv[1]}, "sk": {"S": "task"}}, ConsistentRead=True)["Item"]["status"]["S"])' "$1"; }
submit() { "$bin" bulk submit --template aws-issued --rows "$1" --key "$2" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["taskId"])'; }
census() { # census TASK_ID PREFIX SECONDS LABEL: counts, one ACTIVE certificate per good row, no orphan, DLQ; rows/s
  "$VENV/bin/python" - "$@" "$ROWS" <<'PY' | tee -a "$work/results"
import os, sys, boto3
from cryptography import x509
tid, prefix, secs, label, rows = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4], int(sys.argv[5])
ddb, iot, sqs = boto3.client("dynamodb"), boto3.client("iot"), boto3.client("sqs")
t = ddb.get_item(TableName=os.environ["CDF_TABLE"], Key={"pk": {"S": f"task#{tid}"}, "sk": {"S": "task"}}, ConsistentRead=True)["Item"]
ours = {}
for page in iot.get_paginator("list_certificates").paginate(pageSize=250):
    for c in page["certificates"]:
        pem = iot.describe_certificate(certificateId=c["certificateId"])["certificateDescription"]["certificatePem"]
        cn = x509.load_pem_x509_certificate(pem.encode()).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if cn and cn[0].value.startswith(prefix):
            ours[c["certificateId"]] = c["status"]
attached = 0
for i in range(rows):
    if i % 100 == 7:
        continue
    p = iot.list_thing_principals(thingName=f"{prefix}{i}")["principals"]
    assert len(p) == 1, (prefix, i, p)
    assert ours.get(p[0].rsplit("/", 1)[1]) == "ACTIVE", (prefix, i)
    attached += 1
ok, failed = int(t["successCount"]["N"]), int(t["failureCount"]["N"])
dlq = int(sqs.get_queue_attributes(QueueUrl=os.environ["CDF_DEAD_LETTER_QUEUE"], AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
print(f"{label}: {t['status']['S']}, {ok} succeeded, {failed} failed, {secs:.1f} s, {ok / secs:.2f} rows/s; "
      f"{len(ours)} certificates for {attached} good rows (orphans: {len(ours) - attached}); dead-lettered: {dlq}")
print(f"RATE {label} {ok / secs:.4f}")
PY
}

# raw_loop iot|rowcalls: the emulator's capacity for a device's calls, made in a raw loop (one
# boto3 client, sequential) for as many devices as a task has good rows. `iot`: the IoT calls
# of a device. `rowcalls`: every call a worker makes for a row of the aws-issued template, in
# its order and with items of about its sizes: the row's record, the key to S3, the checkpoint
# written before the certificate request (key and note), the same IoT calls, and the outcome
# with the row's result counted on its task in one transaction; the task re-read every 10 rows.
raw_loop() {
  "$VENV/bin/python" - "$1" "$ROWS" <<'PY' | tee -a "$work/results"
import os, sys, time, boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
mode, n = sys.argv[1], int(sys.argv[2]) * 99 // 100
every = mode == "rowcalls"
iot = boto3.client("iot")
if every:
    ddb, s3 = boto3.client("dynamodb"), boto3.client("s3")
    table, bucket = os.environ["CDF_TABLE"], os.environ["CDF_BUCKET"]
    S = lambda v: {"S": v}
    ddb.put_item(TableName=table, Item={"pk": S("task#raw"), "sk": S("task"), "successCount": {"N": "0"}})
start = time.time()
for i in range(n):
    if every:
        key = {"pk": S(f"cmd#raw:{i}"), "sk": S("cmd")}
        ddb.put_item(TableName=table, Item={**key, "status": S("IN_PROGRESS"), "leaseToken": S("t"), "checkpoints": {"M": {}},
                     "payloadHash": S("h" * 64), "commandType": S("provisionThing")}, ConditionExpression="attribute_not_exists(pk)")
    pk = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"raw-{i}")])).sign(pk, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    if every:
        s3.put_object(Bucket=bucket, Key=f"secrets/raw-{i}.pem", Body=pk.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        held = {":running": S("IN_PROGRESS"), ":token": S("t")}
        ddb.update_item(TableName=table, Key=key, ConditionExpression="#st = :running AND #tok = :token",
                        UpdateExpression="SET #cp.#b = :b, #cp.#c = :c",
                        ExpressionAttributeNames={"#cp": "checkpoints", "#b": "key", "#c": "certificateRequested", "#st": "status", "#tok": "leaseToken"},
                        ExpressionAttributeValues={**held, ":b": S(csr * 2), ":c": S("k" * 200)})
    try: iot.describe_thing(thingName=f"raw-{i}")
    except iot.exceptions.ResourceNotFoundException: pass
    c = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=False)
    iot.create_thing(thingName=f"raw-{i}")
    iot.attach_policy(policyName="cdf-example-device", target=c["certificateArn"])
    iot.attach_thing_principal(thingName=f"raw-{i}", principal=c["certificateArn"])
    iot.update_certificate(certificateId=c["certificateId"], newStatus="ACTIVE")
    if every:
        ddb.transact_write_items(TransactItems=[
            {"Update": {"TableName": table, "Key": key, "UpdateExpression": "SET #st = :done, #res = :res REMOVE #tok",
                        "ConditionExpression": "#st = :running AND #tok = :token",
                        "ExpressionAttributeNames": {"#st": "status", "#tok": "leaseToken", "#res": "result"},
                        "ExpressionAttributeValues": {**held, ":done": S("SUCCEEDED"), ":res": S(c["certificatePem"] + "r" * 600)}}},
            {"Put": {"TableName": table, "Item": {"pk": S("task#raw"), "sk": S(f"row#{i:010}"), "result": S("r" * 700)}, "ConditionExpression": "attribute_not_exists(pk)"}},
            {"Update": {"TableName": table, "Key": {"pk": S("task#raw"), "sk": S("task")}, "UpdateExpression": "ADD #c :one",
                        "ConditionExpression": "attribute_exists(pk)", "ExpressionAttributeNames": {"#c": "successCount"}, "ExpressionAttributeValues": {":one": {"N": "1"}}}}])
        if i % 10 == 0:
            ddb.get_item(TableName=table, Key={"pk": S("task#raw"), "sk": S("task")}, ConsistentRead=True)
secs = time.time() - start
what = "raw loop of every call a row makes" if every else "raw loop"
print(f"{what}: {n} devices in {secs:.1f} s, {n / secs:.2f} devices/s")
print(f"RATE {'rowcalls' if every else 'raw'} {n / secs:.4f}")
PY
}

if [ "${RATES:-1}" = 1 ]; then
echo "== the emulator's raw capacity: the same IoT calls per device, in a raw loop"
fresh_emulator
raw_loop iot

echo "== the emulator's raw capacity for every call a row makes (IoT, DynamoDB, S3), in a raw loop"
fresh_emulator
raw_loop rowcalls

echo "== $ROWS rows, one worker"
fresh_emulator
task_one=$(submit "$work/one.ndjson" bench-one)
start_worker
secs_one=$(wait_task "$task_one")
stop_workers
census "$task_one" bench-one- "$secs_one" "one worker"

echo "== $ROWS rows, two workers"
fresh_emulator
task_two=$(submit "$work/two.ndjson" bench-two)
start_worker; start_worker
secs_two=$(wait_task "$task_two")
stop_workers
census "$task_two" bench-two- "$secs_two" "two workers"
awk '/^RATE/ {rate[$2] = $NF} END {
  printf "workers reach %.0f%% (one) and %.0f%% (two) of the raw loop of the same IoT calls\n", 100 * rate["one"] / rate["raw"], 100 * rate["two"] / rate["raw"]
  printf "workers reach %.0f%% (one) and %.0f%% (two) of the raw loop of every call a row makes\n", 100 * rate["one"] / rate["rowcalls"], 100 * rate["two"] / rate["rowcalls"] }' "$work/results"
fi

if [ "${KILLS:-0}" = 1 ]; then
  # Not a rate: the census after a worker is killed (SIGKILL, no goodbye) every 15-30 s and
  # started again. A killed worker's chunks come back after the visibility timeout (10 s here),
  # its rows once their leases (9 s) run out; a worker killed more often than that would spend
  # its life waiting for them.
  echo "== $ROWS rows, one worker killed with SIGKILL every 15-30 s and started again"
  fresh_emulator
  task_kill=$(submit "$work/kill.ndjson" bench-kill)
  kills=0; began=$(date +%s)
  export CDF_VISIBILITY_TIMEOUT_SECS=10
  start_worker
  while [ "$(task_status "$task_kill")" = InProgress ]; do
    sleep $((15 + RANDOM % 16))
    [ "$(task_status "$task_kill")" = InProgress ] || break
    kill -9 "${workers[0]}"; wait "${workers[0]}" 2>/dev/null || true; workers=()
    kills=$((kills + 1))
    start_worker
  done
  secs_kill=$(( $(date +%s) - began ))
  stop_workers
  unset CDF_VISIBILITY_TIMEOUT_SECS
  census "$task_kill" bench-kill- "$secs_kill" "one worker killed $kills times"
fi

[ "${MEMORY:-1}" = 1 ] || exit 0
fresh_emulator
"$VENV/bin/python" - "$work" <<'PY'
import os, sys, boto3
s3 = boto3.client("s3")
for name in ("small.ndjson", "large.ndjson"):
    s3.upload_file(f"{sys.argv[1]}/{name}", os.environ["CDF_BUCKET"], f"rows/{name}")
PY
echo "== accepting a 10,000-row task (every row planned, 100 chunk messages sent to SQS)"
t0=$(date +%s%N); accept_task=$(submit "$work/accept.ndjson" bench-accept); t1=$(date +%s%N)
echo "accept: $(( (t1 - t0) / 1000000 )) ms, the CLI process included (task $accept_task, then cancelled and its chunks purged)"
"$bin" bulk cancel "$accept_task" >/dev/null
"$VENV/bin/python" -c 'import boto3, os; boto3.client("sqs").purge_queue(QueueUrl=os.environ["CDF_COMMAND_QUEUE"])'

echo "== peak memory: accepting 1,000 and 100,000 rows from S3; a worker after ${RUN_SECS}s on each"
for size in small large; do
  /usr/bin/time -f "%M" -o "$work/accept-$size.rss" "$bin" bulk submit --template aws-issued --rows-object "rows/$size.ndjson" --key "mem-$size" >"$work/$size.task"
  task=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["taskId"])' "$work/$size.task")
  "$bin" worker >>"$work/worker.log" 2>&1 & pid=$!
  sleep "$RUN_SECS"
  rss=$(rss_of "$pid"); kill "$pid"; wait "$pid" 2>/dev/null || true
  "$bin" bulk cancel "$task" >/dev/null
  echo "$size: accepting peak $(cat "$work/accept-$size.rss") KB; worker peak after ${RUN_SECS}s: $rss KB"
done
