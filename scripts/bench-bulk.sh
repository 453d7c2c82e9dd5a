#!/usr/bin/env bash
# Bulk provisioning end to end against moto, measured side by side in one run:
#  - a 1,000-row task (aws-issued: a key made here, a certificate from AWS) with invalid rows,
#    run by one worker, then another by two workers: rows per second, and a census (counts,
#    one thing and one ACTIVE certificate per good row, no orphan certificate, one
#    bulk.completed per task, nothing dead-lettered);
#  - the emulator's own capacity for the same IoT calls, made in a raw loop (boto3);
#  - the time to accept a 10,000-row task, and the peak memory of accepting 1,000 and 100,000
#    rows from a rows file in S3, and of a worker after a fixed time on each.
# Usage: scripts/bench-bulk.sh            (ROWS=1000 PROFILE=debug|release RUN_SECS=60 LIMITS=lifted|aws)
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
cleanup() {
  for pid in "${workers[@]:-}"; do [ -n "$pid" ] && kill "$pid" 2>/dev/null || true; done
  stop_pid "$pidfile"
  rm -rf "$work"
}
trap cleanup EXIT
start_moto "$port" "$pidfile"
export AWS_ENDPOINT_URL="http://127.0.0.1:$port" CDF_WAIT_TIME_SECS=1 CDF_LOG_LEVEL=warn
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
"$bin" stack deploy --name bench >"$work/stack.env"
set -a; source "$work/stack.env"; set +a

# Template, policy, rows files (1 % invalid rows).
"$VENV/bin/python" - "$work" "$ROWS" <<'PY'
import json, os, sys, boto3
work, rows = sys.argv[1], int(sys.argv[2])
s3 = boto3.client("s3"); iot = boto3.client("iot")
bucket = os.environ["CDF_BUCKET"]
s3.put_object(Bucket=bucket, Key="templates/aws-issued.json", Body=open("infra/templates/aws-issued.json", "rb").read())
iot.create_policy(policyName="cdf-example-device", policyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}))
def rows_file(name, n, prefix):
    with open(f"{work}/{name}", "w") as f:
        for i in range(n):
            thing = f"{prefix}-{i}" if i % 100 != 7 else f"{prefix} invalid {i}"
            f.write(json.dumps({"ThingName": thing}) + "\n")
for task in ("one", "two"):
    rows_file(f"{task}.ndjson", rows, f"bench-{task}")
rows_file("accept.ndjson", 10_000, "accept")
rows_file("small.ndjson", 1_000, "small")
rows_file("large.ndjson", 100_000, "large")
for name in ("small.ndjson", "large.ndjson"):
    s3.upload_file(f"{work}/{name}", bucket, f"imports/{name}")
PY

rss_of() { awk '/VmHWM/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }
start_worker() { "$bin" worker >>"$work/worker.log" 2>&1 & workers+=("$!"); }
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
submit() { "$bin" bulk submit --template aws-issued --rows "$1" --key "$2" | "$VENV/bin/python" -c 'import json,sys; print(json.load(sys.stdin)["taskId"])'; }

echo "== $ROWS rows, one worker"
task_one=$(submit "$work/one.ndjson" bench-one)
start_worker
secs_one=$(wait_task "$task_one")
echo "== $ROWS rows, two workers"
task_two=$(submit "$work/two.ndjson" bench-two)
start_worker
secs_two=$(wait_task "$task_two")
for pid in "${workers[@]}"; do kill "$pid"; wait "$pid" 2>/dev/null || true; done
workers=()

echo "== census and the emulator's raw capacity"
"$VENV/bin/python" - "$task_one" "$task_two" "$secs_one" "$secs_two" "$ROWS" <<'PY'
import json, os, sys, time, boto3
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
task_one, task_two, secs_one, secs_two, rows = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
ddb, iot, sqs = boto3.client("dynamodb"), boto3.client("iot"), boto3.client("sqs")
def task(tid):
    return ddb.get_item(TableName=os.environ["CDF_TABLE"], Key={"pk": {"S": f"task#{tid}"}, "sk": {"S": "task"}}, ConsistentRead=True)["Item"]
certs = {}
for page in iot.get_paginator("list_certificates").paginate(pageSize=250):
    for c in page["certificates"]:
        pem = iot.describe_certificate(certificateId=c["certificateId"])["certificateDescription"]["certificatePem"]
        cn = x509.load_pem_x509_certificate(pem.encode()).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        certs[c["certificateId"]] = (cn[0].value if cn else "", c["status"])
for name, tid, secs in (("one worker", task_one, secs_one), ("two workers", task_two, secs_two)):
    t = task(tid)
    ok, failed = int(t["successCount"]["N"]), int(t["failureCount"]["N"])
    prefix = "bench-one-" if tid == task_one else "bench-two-"
    ours = {cid: s for cid, (cn, s) in certs.items() if cn.startswith(prefix)}
    attached = 0
    for i in range(rows):
        if i % 100 == 7:
            continue
        p = iot.list_thing_principals(thingName=f"{prefix}{i}")["principals"]
        assert len(p) == 1, (prefix, i, p)
        assert ours.get(p[0].rsplit("/", 1)[1]) == "ACTIVE", (prefix, i)
        attached += 1
    print(f"{name}: {t['status']['S']}, {ok} succeeded, {failed} failed, {secs:.1f} s, {ok / secs:.2f} rows/s; "
          f"{len(ours)} certificates for {attached} good rows (orphans: {len(ours) - attached})")
dlq = int(sqs.get_queue_attributes(QueueUrl=os.environ["CDF_DEAD_LETTER_QUEUE"], AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]["ApproximateNumberOfMessages"])
print(f"dead-lettered: {dlq}")
# The same IoT calls per device, in a raw loop: the emulator's own capacity.
n, start = 100, time.time()
for i in range(n):
    key = ec.generate_private_key(ec.SECP256R1())
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, f"raw-{i}")])).sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM).decode()
    try: iot.describe_thing(thingName=f"raw-{i}")
    except iot.exceptions.ResourceNotFoundException: pass
    c = iot.create_certificate_from_csr(certificateSigningRequest=csr, setAsActive=False)
    iot.create_thing(thingName=f"raw-{i}")
    iot.attach_policy(policyName="cdf-example-device", target=c["certificateArn"])
    iot.attach_thing_principal(thingName=f"raw-{i}", principal=c["certificateArn"])
    iot.update_certificate(certificateId=c["certificateId"], newStatus="ACTIVE")
raw = n / (time.time() - start)
print(f"raw loop, the same IoT calls per device: {raw:.2f} devices/s; workers reach {secs and (rows * 0.99 / secs_one) / raw:.0%} (one) and {(rows * 0.99 / secs_two) / raw:.0%} (two) of it")
PY

echo "== accepting a 10,000-row task (every row planned, 100 chunk messages sent to SQS)"
t0=$(date +%s%N); accept_task=$(submit "$work/accept.ndjson" bench-accept); t1=$(date +%s%N)
echo "accept: $(( (t1 - t0) / 1000000 )) ms, the CLI process included (task $accept_task, then cancelled and its chunks purged)"
"$bin" bulk cancel "$accept_task" >/dev/null
"$VENV/bin/python" -c 'import boto3, os; boto3.client("sqs").purge_queue(QueueUrl=os.environ["CDF_COMMAND_QUEUE"])'

echo "== peak memory: accepting 1,000 and 100,000 rows from S3; a worker after ${RUN_SECS}s on each"
for size in small large; do
  /usr/bin/time -f "%M" -o "$work/accept-$size.rss" "$bin" bulk submit --template aws-issued --rows-object "imports/$size.ndjson" --key "mem-$size" >"$work/$size.task"
  task=$("$VENV/bin/python" -c 'import json,sys; print(json.load(open(sys.argv[1]))["taskId"])' "$work/$size.task")
  "$bin" worker >>"$work/worker.log" 2>&1 & pid=$!
  sleep "$RUN_SECS"
  rss=$(rss_of "$pid"); kill "$pid"; wait "$pid" 2>/dev/null || true
  "$bin" bulk cancel "$task" >/dev/null
  echo "$size: accepting peak $(cat "$work/accept-$size.rss") KB; worker peak after ${RUN_SECS}s: $rss KB"
done
