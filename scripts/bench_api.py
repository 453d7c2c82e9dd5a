"""REST facade benchmark: `GET /things/{thingName}` requests per second and latency against the
emulator, next to the emulator's own capacity for the same IoT calls, measured in the same run.

    scripts/bench-api.sh            # release build; CONCURRENCY=16 SECONDS=20 THINGS=20

1. The stack is deployed on a fresh emulator and THINGS things are provisioned (POST /things).
2. A facade routed through the fault proxy answers one GET per thing while the proxy records
   the IoT requests it forwards: the calls one GET costs.
3. A facade talking straight to the emulator is loaded with CONCURRENCY keep-alive clients for
   SECONDS: requests per second, p50 and p99 latency, error count.
4. The recorded IoT requests are replayed straight at the emulator with the same concurrency
   for SECONDS: its capacity in calls per second, and so in GETs per second.
"""

import asyncio
import base64
import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fault_suite  # noqa: E402  (process helpers)

MEDIA = "application/vnd.aws-cdf-v1.0+json"


async def exchange(reader, writer, method, target, headers, body=b""):
    head = [f"{method} {target} HTTP/1.1", "Host: bench"] + [f"{n}: {v}" for n, v in headers]
    head.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length, chunked = 0, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        if name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(length)
    return status


async def one_shot(port, method, target, headers, body):
    """A request on its own connection, read to the end (how the emulator's server is sure to
    frame its answers)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [f"{method} {target} HTTP/1.1", "Host: bench", "Connection: close"] + [f"{n}: {v}" for n, v in headers]
    head.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    raw = await reader.read()
    writer.close()
    return int(raw.split(b" ", 2)[1])


async def load(port, requests, concurrency, seconds, keep_alive=True):
    """`requests`: list of (method, target, headers, body); each client picks at random."""
    latencies, errors = [], 0
    deadline = time.perf_counter() + seconds

    async def client():
        nonlocal errors
        if not keep_alive:
            while time.perf_counter() < deadline:
                method, target, headers, body = random.choice(requests)
                start = time.perf_counter()
                status = await one_shot(port, method, target, headers, body)
                latencies.append(time.perf_counter() - start)
                errors += status >= 500
            return
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.perf_counter() < deadline:
            method, target, headers, body = random.choice(requests)
            start = time.perf_counter()
            try:
                status = await exchange(reader, writer, method, target, headers, body)
            except (ConnectionError, asyncio.IncompleteReadError):
                errors += 1
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                continue
            latencies.append(time.perf_counter() - start)
            errors += status >= 500
        writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    pick = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000 if latencies else 0
    return {"requests": len(latencies), "per_second": round(len(latencies) / elapsed, 1), "p50_ms": round(pick(0.5), 1), "p99_ms": round(pick(0.99), 1), "errors": errors}


def start_api(binary, env, port, log):
    process = subprocess.Popen([binary, "api", "--bind", f"127.0.0.1:{port}"], env=env, stdout=log, stderr=log)
    fault_suite.wait_http(f"http://127.0.0.1:{port}/health")
    return process


def main():
    binary = sys.argv[1]
    concurrency = int(os.environ.get("CONCURRENCY", 16))
    seconds = int(os.environ.get("SECONDS_PER_LOAD", 20))
    things = int(os.environ.get("THINGS", 20))
    run = fault_suite.Run("bench-api", things, binary, 1, 1)
    run.start_emulator()
    apis = []
    try:
        run.deploy()
        log = open(os.path.join(run.dir, "api.log"), "w")
        # The client-side rate limits hold the facade to AWS IoT's quotas (10/s for several
        # of these reads by default); lifted here, so that the facade and the emulator are
        # measured, not the quotas.
        lifted = ",".join(f"{op}=10000" for op in ("DescribeThing", "ListThingPrincipals", "ListThingGroupsForThing",
                                                    "DescribeCertificate", "ListAttachedPolicies", "GetPolicy", "DescribeThingGroup"))
        base_env = dict(os.environ, **run.stack, CDF_LOG_LEVEL="warn", CDF_IOT_RATE_LIMITS=lifted)
        via_proxy = fault_suite.free_port()
        apis.append(start_api(binary, dict(base_env, AWS_ENDPOINT_URL=run.proxy_url), via_proxy, log))
        names = [f"bench-{i:04d}" for i in range(things)]
        for name in names:
            body = json.dumps({"provisioningTemplateId": "aws-issued", "parameters": {"ThingName": name}}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{via_proxy}/things", data=body, method="POST",
                                             headers={"Accept": MEDIA, "Content-Type": MEDIA})
            urllib.request.urlopen(request, timeout=30).read()
        run.proxy_call("POST", "/__proxy/record")
        for name in names:
            request = urllib.request.Request(f"http://127.0.0.1:{via_proxy}/things/{name}", headers={"Accept": MEDIA})
            urllib.request.urlopen(request, timeout=30).read()
        recorded = run.proxy_call("GET", "/__proxy/recorded")
        iot = [r for r in recorded if r["service"] == "iot"]
        ops = {}
        for r in iot:
            ops[r["op"]] = ops.get(r["op"], 0) + 1
        calls_per_get = len(iot) / things

        direct = fault_suite.free_port()
        apis.append(start_api(binary, dict(base_env, AWS_ENDPOINT_URL=run.moto_url), direct, log))
        gets = [("GET", f"/things/{name}", [("Accept", MEDIA)], b"") for name in names]
        asyncio.run(load(direct, gets, concurrency, 3))  # warm-up
        moto_cpu = fault_suite.cpu_seconds(run.moto.pid)
        api_cpu = fault_suite.cpu_seconds(apis[-1].pid)
        facade = asyncio.run(load(direct, gets, concurrency, seconds))
        facade["emulator_cpu_share"] = round((fault_suite.cpu_seconds(run.moto.pid) - moto_cpu) / seconds, 2)
        facade["facade_cpu_ms_per_request"] = round((fault_suite.cpu_seconds(apis[-1].pid) - api_cpu) * 1000 / max(facade["requests"], 1), 2)

        replay = [(r["method"], r["target"], [(n, v) for n, v in r["headers"] if n.lower() not in ("content-length", "connection")], base64.b64decode(r["body"])) for r in iot]
        moto_cpu = fault_suite.cpu_seconds(run.moto.pid)
        capacity = asyncio.run(load(run.moto_port, replay, concurrency, seconds, keep_alive=False))
        capacity["emulator_cpu_share"] = round((fault_suite.cpu_seconds(run.moto.pid) - moto_cpu) / seconds, 2)
        capacity["gets_per_second_equivalent"] = round(capacity["per_second"] / calls_per_get, 1)
        print(json.dumps({"concurrency": concurrency, "seconds": seconds, "things": things,
                          "iot_calls_per_get": round(calls_per_get, 2), "iot_calls": ops,
                          "facade": facade, "emulator_alone": capacity,
                          "facade_share_of_emulator_capacity": round(facade["per_second"] / max(capacity["gets_per_second_equivalent"], 0.1), 2)}, indent=1))
    finally:
        for api in apis:
            api.send_signal(signal.SIGTERM)
            api.wait(timeout=30)
        run.stop_all()


if __name__ == "__main__":
    main()
