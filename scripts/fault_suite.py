"""The fault suite: provisioning commands through the real worker against the emulator while
faults are injected, each run ending in a census of IoT, DynamoDB, the events and the queues.

    scripts/fault-suite.sh [--commands 500] [--runs 3] [scenario ...]

Scenarios (all by default):
- baseline: no faults; the reference time for `throttle`.
- kill: one worker, killed with SIGKILL at random moments and restarted.
- kill3: three workers on the queue, each killed with SIGKILL at random moments and restarted.
- freeze: the emulator stopped (SIGSTOP) for 15 s mid-run, then resumed.
- pause: two workers on the queue; one at a time, alternately, is stopped (SIGSTOP) for its
  lease and 5-15 s more, so that the other takes its commands over, then resumed (SIGCONT): the
  first freeze once a tenth of the commands are announced, the next 10-20 s after each resume.
  After the last resume the workers are left 15 s to act before they are stopped.
- throttle: 30 % of IoT calls answered ThrottlingException by the fault proxy.
- sigterm: the worker stopped with SIGTERM under load at random moments and restarted.
- cut: 5 % of IoT calls dropped unanswered after they ran on the emulator, and 5 % of
  DynamoDB and SQS calls answered 503.
- load: no faults, more commands in flight (`--concurrency 64`): the load benchmark
  (`scripts/bench.sh`), reporting throughput, the worker's CPU time per command, its peak
  resident memory, the emulator's CPU share and the AWS calls per command.

Each run starts a fresh emulator and fault proxy, deploys the stack, enqueues the commands
(half AWS-issued certificates, half from CSRs), runs the scenario until every command has
announced its outcome on the events queue (the progress check reads events, not records),
then takes the census: exactly one terminal record per command, all SUCCEEDED; one thing and
one ACTIVE certificate per command, every certificate attached to its thing and nothing else;
one event id per command; the dead-letter queue empty; no private key material in the
worker's logs, the table, the events or the dead-letter queue; every private key a SUCCEEDED
record names (`privateKeySecret`) is in S3 and is the key of the certificate on the command's
thing, and nothing under the secrets prefix is named by no record. Exit status 1 if any check
fails.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import boto3
from botocore.config import Config
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STATE = os.path.join(ROOT, ".local", "fault-suite")
PYTHON = sys.executable
# The deployment's visibility timeout (VisibilityTimeoutSecs, CDF_VISIBILITY_TIMEOUT_SECS) and the
# worker's lease derived from it (wiring::app_settings: the timeout less a tenth, at least 1 s).
VISIBILITY_SECS = 30
LEASE_SECS = VISIBILITY_SECS - max(VISIBILITY_SECS // 10, 1)
# `pause`: how long a resumed worker is left to act before the workers are stopped.
PAUSE_SETTLE_SECS = 15
# PEM armour, and the base64 openings of EC (SEC1, PKCS#8) and RSA (PKCS#8, PKCS#1) private keys.
KEY_MARKERS = ("PRIVATE KEY-----", "MHcCAQEE", "MIGHAgEA", "MIIEvQIBADAN", "MIIEpAIBAAKCAQEA")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """User and system CPU time of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def wait_http(url, seconds=20):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


class Run:
    """One scenario run: emulator, proxy, stack, workers and the census."""

    def __init__(self, scenario, commands, worker_bin, concurrency, run_id, window=None):
        self.scenario, self.n, self.bin, self.concurrency = scenario, commands, worker_bin, concurrency
        self.dir = os.path.join(STATE, f"{scenario}-{run_id}")
        shutil.rmtree(self.dir, ignore_errors=True)
        os.makedirs(self.dir)
        self.moto_port, self.proxy_port = free_port(), free_port()
        self.moto_url = f"http://127.0.0.1:{self.moto_port}"
        self.proxy_url = f"http://127.0.0.1:{self.proxy_port}"
        self.workers = []
        self.worker_starts = 0
        self.kills = 0
        self.freezes = 0
        # `pause`: the frozen worker's slot and when it is resumed; when the last one was.
        self.paused = None
        self.resumed_at = None
        self.events = []
        self.announced_keys = set()
        self.lock = threading.Lock()
        # Commands waiting on the queue at most (a steady producer); all at once when None.
        self.window = window
        self.unsent = []

    # --- processes -----------------------------------------------------------------------
    def start_emulator(self):
        log = open(os.path.join(self.dir, "moto.log"), "w")
        script = os.path.join(ROOT, "scripts", "moto_server.py")
        self.moto = subprocess.Popen([PYTHON, script, "-H", "127.0.0.1", "-p", str(self.moto_port)], stdout=log, stderr=log)
        wait_http(self.moto_url + "/moto-api/")
        script = os.path.join(ROOT, "scripts", "fault_proxy.py")
        listen, upstream = f"127.0.0.1:{self.proxy_port}", f"127.0.0.1:{self.moto_port}"
        proxy_log = open(os.path.join(self.dir, "proxy.log"), "w")
        self.proxy = subprocess.Popen(
            [PYTHON, script, "--listen", listen, "--upstream", upstream], stdout=proxy_log, stderr=proxy_log
        )
        wait_http(self.proxy_url + "/__proxy/stats")

    def proxy_call(self, method, path, body=None):
        request = urllib.request.Request(self.proxy_url + path, data=body, method=method)
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read() or b"{}")

    def set_faults(self, rules):
        self.proxy_call("PUT", "/__proxy/rules", json.dumps(rules).encode())

    def client(self, service):
        config = Config(retries={"max_attempts": 10, "mode": "standard"}, max_pool_connections=50)
        return boto3.client(service, endpoint_url=self.moto_url, config=config)

    def deploy(self):
        env = dict(os.environ, AWS_ENDPOINT_URL=self.moto_url)
        params = ["--param", f"VisibilityTimeoutSecs={VISIBILITY_SECS}"]
        out = subprocess.run(
            [self.bin, "stack", "deploy", "--name", "faults", *params], env=env, check=True, capture_output=True, text=True
        ).stdout
        self.stack = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
        s3 = self.client("s3")
        for template in ("aws-issued", "csr"):
            with open(os.path.join(ROOT, "infra", "templates", f"{template}.json"), "rb") as f:
                s3.put_object(Bucket=self.stack["CDF_BUCKET"], Key=f"templates/{template}.json", Body=f.read())
        document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
        self.client("iot").create_policy(policyName="cdf-example-device", policyDocument=json.dumps(document))
        self.events_url = self.client("sqs").get_queue_url(QueueName=self.stack["CDF_EVENTS_DESTINATION"].rsplit("/", 1)[-1])["QueueUrl"]

    def enqueue(self):
        bodies = []
        for i in range(self.n):
            name = self.thing(i)
            if i % 2:
                key = ec.generate_private_key(ec.SECP256R1())
                subject = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, name)])
                csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
                pem = csr.public_bytes(serialization.Encoding.PEM).decode()
                payload = {"provisioningTemplateId": "csr", "parameters": {"ThingName": name, "CSR": pem}}
            else:
                payload = {"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": name}}
            bodies.append(json.dumps({"schemaVersion": 1, "type": "provisionThing", "idempotencyKey": self.key(i), "payload": payload}))
        first = len(bodies) if self.window is None else self.window
        self.send(bodies[:first])
        self.unsent = bodies[first:]
        self.sent = first

    def send(self, bodies):
        sqs = self.client("sqs")
        for start in range(0, len(bodies), 10):
            entries = [{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[start : start + 10])]
            sqs.send_message_batch(QueueUrl=self.stack["CDF_COMMAND_QUEUE"], Entries=entries)

    def feed(self, stop):
        """Keeps at most `window` commands outstanding, as a steady producer does (moto's SQS
        scans the whole queue on every call, so a deep queue measures the emulator, not us)."""
        while self.unsent and not stop.is_set():
            room = self.window - (self.sent - self.announced())
            if room >= 10:
                batch, self.unsent = self.unsent[:room], self.unsent[room:]
                self.send(batch)
                self.sent += len(batch)
            time.sleep(0.2)

    def thing(self, i):
        return f"fault-{i:05d}"

    def key(self, i):
        return f"fault-cmd-{i}"

    def start_worker(self, slot):
        env = dict(
            os.environ,
            **self.stack,
            AWS_ENDPOINT_URL=self.proxy_url,
            CDF_WAIT_TIME_SECS="2",
            CDF_CONCURRENCY=str(self.concurrency),
            CDF_VISIBILITY_TIMEOUT_SECS=str(VISIBILITY_SECS),
            CDF_SHUTDOWN_GRACE_SECS="20",
            CDF_LOG_FORMAT="json",
            CDF_LOG_LEVEL="info",
        )
        log = open(os.path.join(self.dir, f"worker-{slot}.log"), "a")
        process = subprocess.Popen([self.bin, "worker"], env=env, stdout=log, stderr=log)
        self.worker_starts += 1
        return process

    def stop_workers(self):
        self.resume_workers()
        for process in self.workers:
            if process.poll() is None:
                # A stopped process would not act on SIGTERM until continued.
                process.send_signal(signal.SIGCONT)
                process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    def stop_all(self):
        self.stop_workers()
        for process in (getattr(self, "proxy", None), getattr(self, "moto", None)):
            if process and process.poll() is None:
                process.send_signal(signal.SIGCONT)
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()

    # --- progress ------------------------------------------------------------------------
    def drain_events(self, stop):
        sqs = self.client("sqs")
        while not stop.is_set():
            try:
                messages = sqs.receive_message(QueueUrl=self.events_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
            except Exception:
                time.sleep(0.5)  # the emulator may be frozen
                continue
            if not messages:
                continue
            with self.lock:
                for m in messages:
                    event = json.loads(m["Body"])
                    self.events.append(event)
                    self.announced_keys.add(event.get("data", {}).get("idempotencyKey"))
            entries = [{"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(messages)]
            try:
                sqs.delete_message_batch(QueueUrl=self.events_url, Entries=entries)
            except Exception:
                pass

    def announced(self):
        with self.lock:
            return len(self.announced_keys)

    # --- scenarios -----------------------------------------------------------------------
    def run(self, timeout):
        self.start_emulator()
        try:
            self.deploy()
            self.enqueue()
            stop = threading.Event()
            drainer = threading.Thread(target=self.drain_events, args=(stop,), daemon=True)
            drainer.start()
            threading.Thread(target=self.feed, args=(stop,), daemon=True).start()
            started = time.time()
            moto_cpu = cpu_seconds(self.moto.pid)
            self.perturb(started, timeout)
            self.elapsed = time.time() - started
            self.usage = {
                "emulator_cpu_share": round((cpu_seconds(self.moto.pid) - moto_cpu) / self.elapsed, 2),
                "worker_cpu_ms_per_command": round(cpu_seconds(self.workers[0].pid) * 1000 / self.n, 2),
                "worker_peak_rss_mb": round(peak_rss_kb(self.workers[0].pid) / 1024, 1),
            }
            self.stop_workers()
            time.sleep(2)
            stop.set()
            drainer.join()
            stats = self.proxy_call("GET", "/__proxy/stats")
            self.faults = stats["faults"]
            per_service = {}
            for name, count in stats["requests"].items():
                service = name.split(":", 1)[0]
                per_service[service] = per_service.get(service, 0) + count
            self.usage["aws_calls_per_command"] = {k: round(v / self.n, 2) for k, v in sorted(per_service.items())}
            return self.census()
        finally:
            self.stop_all()

    def done(self):
        return self.announced() >= self.n

    def perturb(self, started, timeout):
        scenario = self.scenario
        slots = {"kill3": 3, "pause": 2}.get(scenario, 1)
        if scenario == "throttle":
            self.set_faults([{"service": "iot", "fault": "throttle", "rate": 0.3}])
        if scenario == "cut":
            self.set_faults(
                [
                    {"service": "iot", "fault": "cut_after", "rate": 0.05},
                    {"service": "dynamodb", "fault": "unavailable", "rate": 0.05},
                    {"service": "sqs", "op": "DeleteMessageBatch", "fault": "unavailable", "rate": 0.05},
                    {"service": "sqs", "op": "ChangeMessageVisibility", "fault": "unavailable", "rate": 0.05},
                ]
            )
        self.workers = [self.start_worker(slot) for slot in range(slots)]
        try:
            self.inject(scenario, slots, started, timeout)
        finally:
            self.resume_workers()
        self.set_faults([])

    def inject(self, scenario, slots, started, timeout):
        # Each worker is hit every 3-8 s; with three workers, each every 5-15 s (a kill every
        # 3.3 s on average across the three).
        low, high = (5, 15) if slots == 3 else (3, 8)
        next_fault = [started + random.uniform(low, high) for _ in range(slots)]
        frozen = False
        # `pause`: the first freeze once a tenth of the commands are announced (both workers
        # busy), then one 10-20 s after each resume; the slot frozen alternates.
        next_pause, pause_slot = None, 0
        while not self.done() or self.paused is not None:
            now = time.time()
            if now - started > timeout:
                print(f"  timed out after {timeout} s with {self.announced()} of {self.n} announced", flush=True)
                break
            if scenario == "pause":
                if self.paused is not None and now >= self.paused[1]:
                    self.resume_workers()
                    next_pause, pause_slot = now + random.uniform(10, 20), 1 - pause_slot
                elif self.paused is None and not self.done():
                    if next_pause is None and self.announced() >= self.n // 10:
                        next_pause = now
                    if next_pause is not None and now >= next_pause:
                        self.workers[pause_slot].send_signal(signal.SIGSTOP)
                        self.paused = (pause_slot, now + LEASE_SECS + random.uniform(5, 15))
                        self.freezes += 1
            if scenario in ("kill", "kill3", "sigterm"):
                for slot in range(slots):
                    if now >= next_fault[slot]:
                        process = self.workers[slot]
                        process.send_signal(signal.SIGKILL if scenario != "sigterm" else signal.SIGTERM)
                        process.wait()
                        self.kills += 1
                        self.workers[slot] = self.start_worker(slot)
                        next_fault[slot] = now + random.uniform(low, high)
            if scenario == "freeze" and not frozen and self.announced() >= self.n // 3:
                self.moto.send_signal(signal.SIGSTOP)
                time.sleep(15)
                self.moto.send_signal(signal.SIGCONT)
                frozen = True
            time.sleep(0.1)
        if scenario == "pause" and self.resumed_at is not None:
            # The last worker resumed acts on with what it held when it was frozen: give its
            # stale attempts time to run before the workers are stopped and the census taken.
            time.sleep(max(0.0, self.resumed_at + PAUSE_SETTLE_SECS - time.time()))

    def resume_workers(self):
        """Resumes the frozen worker, if any (SIGCONT to a running process does nothing)."""
        if self.paused is not None:
            slot, _ = self.paused
            self.paused = None
            if self.workers[slot].poll() is None:
                self.workers[slot].send_signal(signal.SIGCONT)
            self.resumed_at = time.time()

    # --- census --------------------------------------------------------------------------
    def certificate_label(self, iot, certificate):
        """`<id prefix> <status> CN=<subject common name>`: whose certificate it was meant to be."""
        label = f"{certificate['certificateId'][:12]} {certificate['status']}"
        try:
            pem = iot.describe_certificate(certificateId=certificate["certificateId"])["certificateDescription"]["certificatePem"]
            names = x509.load_pem_x509_certificate(pem.encode()).subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            return f"{label} CN={names[0].value}" if names else label
        except Exception:
            return label

    def key_census(self, items, records, attached, by_arn, problems):
        """Every stored private key a record names is in S3 and belongs to the certificate on the
        command's thing; nothing else is left under the secrets prefix."""
        iot, s3 = self.client("iot"), self.client("s3")
        things_certificates = {}
        for arn, ts in attached.items():
            for thing in ts:
                things_certificates.setdefault(thing, []).append(arn)
        certificate_keys = {}

        def certificate_key(arn):
            if arn not in certificate_keys:
                certificate_id = by_arn.get(arn, {}).get("certificateId") or arn.rsplit("/", 1)[-1]
                try:
                    pem = iot.describe_certificate(certificateId=certificate_id)["certificateDescription"]["certificatePem"]
                    certificate_keys[arn] = public_key_der(x509.load_pem_x509_certificate(pem.encode()).public_key())
                except (iot.exceptions.ResourceNotFoundException, ValueError):
                    certificate_keys[arn] = None  # gone since it was listed, or unreadable: matches no key
            return certificate_keys[arn]

        referenced, stored, mismatched, missing = set(), 0, [], []
        for key, record in sorted(records.items()):
            result = record_result(record, items)
            secret = ((result or {}).get("result") or {}).get("privateKeySecret")
            if not secret:
                continue
            bucket, _, object_key = secret.removeprefix("s3://").partition("/")
            referenced.add((bucket, object_key))
            if record["status"]["S"] != "SUCCEEDED":
                continue
            stored += 1
            try:
                body = s3.get_object(Bucket=bucket, Key=object_key)["Body"].read()
            except s3.exceptions.NoSuchKey:
                missing.append(key)
                continue
            try:
                private_key = public_key_der(serialization.load_pem_private_key(body, password=None).public_key())
            except (ValueError, TypeError):
                mismatched.append(key)  # not a private key: matches no certificate
                continue
            thing = result["result"].get("thingName") or record.get("subject", {}).get("S")
            arns = things_certificates.get(thing, [])
            # The ACTIVE certificate(s) on the thing; any attached one when none is ACTIVE.
            arns = [a for a in arns if by_arn.get(a, {}).get("status") == "ACTIVE"] or arns
            if not any(certificate_key(arn) == private_key for arn in arns):
                mismatched.append(key)
        if missing:
            problems.append(f"{len(missing)} stored keys named by a record are missing from S3: {missing[:5]}")
        if mismatched:
            problems.append(f"{len(mismatched)} stored keys do not match their certificate: {mismatched[:5]}")

        prefix = os.environ.get("CDF_SECRETS_PREFIX", "secrets/")
        objects = set()
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=self.stack["CDF_BUCKET"], Prefix=prefix):
            objects.update((self.stack["CDF_BUCKET"], o["Key"]) for o in page.get("Contents", []))
        unreferenced = sorted(objects - referenced)
        if unreferenced:
            problems.append(f"{len(unreferenced)} secret objects no record names: {[k for _, k in unreferenced[:5]]}")
        return {
            "stored_keys": stored,
            "key_mismatches": len(mismatched),
            "missing_secrets": len(missing),
            "unreferenced_secrets": len(unreferenced),
        }

    def census(self):
        problems = []
        ddb, iot, sqs = self.client("dynamodb"), self.client("iot"), self.client("sqs")
        items = []
        for page in ddb.get_paginator("scan").paginate(TableName=self.stack["CDF_TABLE"]):
            items.extend(page["Items"])
        records = {i["pk"]["S"][4:]: i for i in items if i["sk"]["S"] == "cmd"}
        statuses = {}
        for i in range(self.n):
            record = records.get(self.key(i))
            status = record["status"]["S"] if record else "MISSING"
            statuses[status] = statuses.get(status, 0) + 1
            if status != "SUCCEEDED":
                error = record.get("error", {}).get("M", {}) if record else {}
                problems.append(f"{self.key(i)}: record {status} {json.dumps(error)[:300]}")
        unpublished = sum(1 for r in records.values() if not r.get("eventPublished", {}).get("BOOL", False))
        if unpublished:
            problems.append(f"{unpublished} finished records not marked as announced")

        things = set()
        for page in iot.get_paginator("list_things").paginate():
            things.update(t["thingName"] for t in page["things"])
        expected = {self.thing(i) for i in range(self.n)}
        if things - expected:
            problems.append(f"unexpected things: {sorted(things - expected)[:10]}")
        if expected - things:
            problems.append(f"{len(expected - things)} things missing: {sorted(expected - things)[:10]}")
        certificates = []
        for page in iot.get_paginator("list_certificates").paginate(pageSize=250):
            certificates.extend(page["certificates"])
        attached = {}
        by_arn = {c["certificateArn"]: c for c in certificates}
        for thing in sorted(things):
            principals = iot.list_thing_principals(thingName=thing)["principals"]
            active = 0
            for arn in principals:
                attached.setdefault(arn, []).append(thing)
            for arn in principals:
                active += by_arn.get(arn, {}).get("status") == "ACTIVE"
            if active != 1 or len(principals) != 1:
                problems.append(f"{thing}: {len(principals)} certificates, {active} ACTIVE")
        orphans = [c["certificateId"][:12] for c in certificates if c["certificateArn"] not in attached]
        shared = [arn for arn, ts in attached.items() if len(ts) > 1]
        if orphans:
            named = [self.certificate_label(iot, c) for c in certificates if c["certificateArn"] not in attached][:5]
            problems.append(f"{len(orphans)} certificates attached to no thing: {named}")
        if shared:
            problems.append(f"{len(shared)} certificates attached to several things")

        keys = self.key_census(items, records, attached, by_arn, problems)

        ids = {}
        for event in self.events:
            key = event.get("data", {}).get("idempotencyKey")
            ids.setdefault(key, set()).add(event["id"])
            if event.get("type") != "thing.provisioned":
                problems.append(f"{key}: event {event.get('type')}")
        duplicate_ids = [k for k, v in ids.items() if len(v) > 1]
        if duplicate_ids:
            problems.append(f"{len(duplicate_ids)} commands announced under several event ids: {duplicate_ids[:5]}")
        missing_events = [self.key(i) for i in range(self.n) if self.key(i) not in ids]
        if missing_events:
            problems.append(f"{len(missing_events)} commands without an event: {missing_events[:5]}")
        redelivered_events = len(self.events) - len(ids)

        dlq = sqs.get_queue_url(QueueName=self.stack["CDF_DEAD_LETTER_QUEUE"].rsplit("/", 1)[-1])["QueueUrl"] if "CDF_DEAD_LETTER_QUEUE" in self.stack else None
        dead = []
        if dlq:
            while True:
                batch = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=0, MessageAttributeNames=["All"]).get("Messages", [])
                if not batch:
                    break
                dead.extend(batch)
            if dead:
                problems.append(f"{len(dead)} messages in the dead-letter queue")

        texts = [json.dumps(items), json.dumps(self.events), json.dumps(dead)]
        for name in os.listdir(self.dir):
            if name.startswith("worker-"):
                with open(os.path.join(self.dir, name), errors="replace") as f:
                    texts.append(f.read())
        leaks = sum(t.count(marker) for t in texts for marker in KEY_MARKERS)
        if leaks:
            problems.append(f"{leaks} occurrences of private key material outside the secret store")
        return {
            "scenario": self.scenario,
            "commands": self.n,
            "seconds": round(self.elapsed, 1),
            "records": statuses,
            "things": len(things),
            "certificates": len(certificates),
            "active": sum(c["status"] == "ACTIVE" for c in certificates),
            "orphans": len(orphans),
            "events": len(self.events),
            "event_redeliveries": redelivered_events,
            "dead_lettered": len(dead),
            "throughput_per_s": round(self.n / self.elapsed, 2),
            "worker_starts": self.worker_starts,
            "kills": self.kills,
            "freezes": self.freezes,
            **keys,
            "faults": self.faults,
            "usage": self.usage,
            "problems": problems,
        }


def record_result(item, items):
    """A record item's result (the JSON `{"commandType": ..., "result": {...}}`): inline in
    `result`, or in the chunk items `result#<resultToken>#<n>` of its partition."""
    if "result" in item:
        return json.loads(item["result"]["S"])
    if "resultChunks" not in item:
        return None
    prefix = f"result#{item['resultToken']['S']}#"
    chunks = sorted((i["sk"]["S"], i["data"]["S"]) for i in items if i["pk"] == item["pk"] and i["sk"]["S"].startswith(prefix))
    return json.loads("".join(data for _, data in chunks))


def public_key_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def main():
    parser = argparse.ArgumentParser(description="fault suite")
    parser.add_argument("scenarios", nargs="*", default=["baseline", "kill", "kill3", "freeze", "pause", "throttle", "sigterm", "cut"])
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--window", type=int, help="commands outstanding at most (default: all enqueued at once)")
    parser.add_argument("--worker", required=True, help="path of the cdf-provisioning binary")
    args = parser.parse_args()
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    # Stopped by SIGTERM, the suite still runs its cleanup: frozen workers are resumed and every
    # process it started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    failed = False
    summary = []
    for scenario in args.scenarios:
        for run_id in range(1, args.runs + 1):
            print(f"== {scenario} run {run_id}: {args.commands} commands", flush=True)
            result = Run(scenario, args.commands, args.worker, args.concurrency, run_id, args.window).run(args.timeout)
            print(json.dumps(result), flush=True)
            summary.append(result)
            failed |= bool(result["problems"])
    print("== summary")
    for r in summary:
        verdict = "ok" if not r["problems"] else f"FAILED ({len(r['problems'])} problems)"
        faults = sum(r["faults"].values())
        print(
            f"{r['scenario']:>9}: {r['commands']} commands in {r['seconds']:>6.1f} s, kills {r['kills']:>3}, freezes {r['freezes']:>2}, "
            f"faults injected {faults:>5}, succeeded {r['records'].get('SUCCEEDED', 0)}, "
            f"orphans {r['orphans']}, dead-lettered {r['dead_lettered']}: {verdict}"
        )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
