"""A fault-injecting HTTP proxy in front of the AWS emulator, for the fault suite.

    python fault_proxy.py --listen 127.0.0.1:PORT --upstream 127.0.0.1:MOTO_PORT

Every request is forwarded to the emulator unless a rule picks it for a fault. Requests are
named by AWS service (from the SigV4 credential scope) and operation (the `X-Amz-Target`
header of JSON protocols, the `Action` of query protocols, or IoT's REST route), so a rule can
aim at one operation, one service or everything.

Control, on the same port (no AWS request uses these paths):
- `PUT /__proxy/rules` with a JSON list of rules, replacing the current ones:
  `{"service": "iot", "op": "CreateCertificateFromCsr", "fault": "throttle", "rate": 0.3}`;
  `service` and `op` default to any; `fault` is one of
  - `throttle`: 429 ThrottlingException, as AWS answers over a quota (the call did not run);
  - `unavailable`: 503 ServiceUnavailableException (the call did not run);
  - `timeout`: the request is held `seconds` (default 40) and the connection dropped unanswered;
  - `cut`: the connection is dropped before the request reaches the emulator;
  - `cut_after`: the request runs on the emulator, then the connection is dropped, so the
    caller cannot know it ran (the case that makes blind retries of non-idempotent calls unsafe).
- `GET /__proxy/stats`: requests and injected faults per service and operation.
- `POST /__proxy/reset`: clears the counters.
- `POST /__proxy/record` starts keeping every forwarded request (method, target, headers,
  body); `GET /__proxy/recorded` returns them (bodies base64) and stops: a benchmark replays
  them straight at the emulator to measure its own capacity for the same calls.
"""

import argparse
import asyncio
import base64
import json
import random
import re
from collections import Counter

# IoT's REST routes, as method and path pattern, to operation names (the ones this service
# calls; anything else is named by method and first path segment).
IOT_ROUTES = [
    ("GET", r"/things/[^/]+/principals", "ListThingPrincipals"),
    ("GET", r"/things/[^/]+/thing-groups", "ListThingGroupsForThing"),
    ("PUT", r"/things/[^/]+/principals", "AttachThingPrincipal"),
    ("DELETE", r"/things/[^/]+/principals", "DetachThingPrincipal"),
    ("GET", r"/things/[^/]+", "DescribeThing"),
    ("POST", r"/things/[^/]+", "CreateThing"),
    ("PATCH", r"/things/[^/]+", "UpdateThing"),
    ("DELETE", r"/things/[^/]+", "DeleteThing"),
    ("POST", r"/things", "RegisterThing"),
    ("GET", r"/things", "ListThings"),
    ("POST", r"/certificates", "CreateCertificateFromCsr"),
    ("POST", r"/keys-and-certificate", "CreateKeysAndCertificate"),
    ("POST", r"/certificate/register(-no-ca)?", "RegisterCertificate"),
    ("GET", r"/certificates", "ListCertificates"),
    ("GET", r"/certificates/[^/]+", "DescribeCertificate"),
    ("PUT", r"/certificates/[^/]+", "UpdateCertificate"),
    ("DELETE", r"/certificates/[^/]+", "DeleteCertificate"),
    ("GET", r"/cacertificate/[^/]+", "DescribeCACertificate"),
    ("GET", r"/principals/things", "ListPrincipalThings"),
    ("PUT", r"/target-policies/[^/]+", "AttachPolicy"),
    ("POST", r"/target-policies/[^/]+", "DetachPolicy"),
    ("POST", r"/attached-policies/[^/]+", "ListAttachedPolicies"),
    ("GET", r"/policies/[^/]+", "GetPolicy"),
    ("POST", r"/policies/[^/]+", "CreatePolicy"),
    ("DELETE", r"/policies/[^/]+", "DeletePolicy"),
    ("PUT", r"/thing-groups/addThingToThingGroup", "AddThingToThingGroup"),
    ("GET", r"/thing-groups/[^/]+", "DescribeThingGroup"),
    ("GET", r"/thing-types/[^/]+", "DescribeThingType"),
]
IOT_ROUTES = [(m, re.compile(p + r"$"), op) for m, p, op in IOT_ROUTES]
SCOPE = re.compile(rb"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")

rules = []
recording = None
requests_seen = Counter()
faults_injected = Counter()


def name_request(method, path, headers, body):
    """(service, operation) of a request."""
    match = SCOPE.search(headers.get("authorization", b""))
    service = match.group(1).decode() if match else "unknown"
    target = headers.get("x-amz-target")
    if target:
        return service, target.decode().rsplit(".", 1)[-1]
    if service == "iot":
        route = path.split("?", 1)[0]
        for m, pattern, op in IOT_ROUTES:
            if m == method and pattern.match(route):
                return service, op
    action = re.search(rb"(?:^|&)Action=([A-Za-z]+)", body)
    if action:
        return service, action.group(1).decode()
    segment = path.split("?", 1)[0].strip("/").split("/", 1)[0]
    return service, f"{method} /{segment}"


def pick_fault(service, op):
    for rule in rules:
        if rule.get("service", service) != service or rule.get("op", op) != op:
            continue
        if random.random() < rule.get("rate", 1.0):
            return rule
    return None


async def read_request(reader):
    """(method, target, headers as (name, value) pairs, body) or None at the end of input."""
    line = await reader.readline()
    if not line:
        return None
    method, target, _ = line.decode("latin-1").rstrip("\r\n").split(" ", 2)
    pairs = []
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, value = header.rstrip(b"\r\n").split(b":", 1)
        pairs.append((name.strip(), value.strip()))
    lookup = {n.lower().decode(): v for n, v in pairs}
    if lookup.get("transfer-encoding", b"").lower() == b"chunked":
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            if size == 0:
                while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                    pass
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
    else:
        body = await reader.readexactly(int(lookup.get("content-length", b"0")))
    return method, target, pairs, lookup, body


def response(status, reason, body, headers=()):
    head = [f"HTTP/1.1 {status} {reason}".encode()]
    head += [b"%s: %s" % (n, v) for n, v in headers]
    head += [b"Content-Length: %d" % len(body), b"Connection: keep-alive"]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def aws_error(service, status, reason, code, message):
    if service in ("sqs", "dynamodb"):
        body = json.dumps({"__type": code, "message": message}).encode()
        return response(status, reason, body, [(b"Content-Type", b"application/x-amz-json-1.0")])
    body = json.dumps({"message": message}).encode()
    return response(
        status, reason, body, [(b"Content-Type", b"application/json"), (b"x-amzn-ErrorType", code.encode())]
    )


async def forward(upstream, method, target, pairs, body):
    """Sends the request to the emulator on a fresh connection and returns its response bytes,
    re-framed with a Content-Length for the keep-alive client connection."""
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        skip = {b"connection", b"transfer-encoding", b"content-length", b"keep-alive"}
        head = [f"{method} {target} HTTP/1.1".encode()]
        head += [b"%s: %s" % (n, v) for n, v in pairs if n.lower() not in skip]
        head += [b"Content-Length: %d" % len(body), b"Connection: close"]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await reader.read()
    finally:
        writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status_line, header_lines = lines[0], lines[1:]
    headers = [tuple(x.strip() for x in line.split(b":", 1)) for line in header_lines if b":" in line]
    chunked = any(n.lower() == b"transfer-encoding" and v.lower() == b"chunked" for n, v in headers)
    if chunked:
        payload = dechunk(payload)
    if method == "HEAD":
        kept = [(n, v) for n, v in headers if n.lower() not in (b"connection", b"keep-alive")]
        return b"\r\n".join([status_line] + [b"%s: %s" % h for h in kept] + [b"Connection: keep-alive"]) + b"\r\n\r\n"
    kept = [(n, v) for n, v in headers if n.lower() not in (b"connection", b"transfer-encoding", b"content-length")]
    parts = [status_line] + [b"%s: %s" % h for h in kept]
    parts += [b"Content-Length: %d" % len(payload), b"Connection: keep-alive"]
    return b"\r\n".join(parts) + b"\r\n\r\n" + payload


def dechunk(data):
    out = b""
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, data = out + data[:size], data[size + 2 :]
    return out


def control(method, path, body):
    global rules, recording
    if method == "POST" and path == "/__proxy/record":
        recording = []
        return response(200, "OK", b"{}")
    if method == "GET" and path == "/__proxy/recorded":
        recorded, recording = recording or [], None
        return response(200, "OK", json.dumps(recorded).encode(), [(b"Content-Type", b"application/json")])
    if method == "PUT" and path == "/__proxy/rules":
        rules = json.loads(body or b"[]")
        return response(200, "OK", b"{}")
    if method == "GET" and path == "/__proxy/stats":
        stats = {
            "requests": {f"{s}:{o}": n for (s, o), n in sorted(requests_seen.items())},
            "faults": {f"{s}:{o}:{f}": n for (s, o, f), n in sorted(faults_injected.items())},
        }
        return response(200, "OK", json.dumps(stats).encode(), [(b"Content-Type", b"application/json")])
    if method == "POST" and path == "/__proxy/reset":
        requests_seen.clear()
        faults_injected.clear()
        return response(200, "OK", b"{}")
    return response(404, "Not Found", b"{}")


async def serve_client(reader, writer, upstream):
    try:
        while True:
            request = await read_request(reader)
            if request is None:
                break
            method, target, pairs, lookup, body = request
            if target.startswith("/__proxy/"):
                writer.write(control(method, target, body))
                await writer.drain()
                continue
            service, op = name_request(method, target, lookup, body)
            requests_seen[(service, op)] += 1
            rule = pick_fault(service, op)
            fault = rule["fault"] if rule else None
            if fault:
                faults_injected[(service, op, fault)] += 1
            if fault == "throttle":
                writer.write(aws_error(service, 429, "Too Many Requests", "ThrottlingException", "Rate exceeded"))
            elif fault == "unavailable":
                writer.write(
                    aws_error(service, 503, "Service Unavailable", "ServiceUnavailableException", "Injected outage")
                )
            elif fault == "timeout":
                await asyncio.sleep(rule.get("seconds", 40))
                break
            elif fault == "cut":
                break
            elif fault == "cut_after":
                await forward(upstream, method, target, pairs, body)
                break
            else:
                if recording is not None:
                    headers = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in pairs]
                    encoded = base64.b64encode(body).decode()
                    recording.append({"service": service, "op": op, "method": method, "target": target, "headers": headers, "body": encoded})
                writer.write(await forward(upstream, method, target, pairs, body))
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        pass
    finally:
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--listen", required=True, help="host:port to listen on")
    parser.add_argument("--upstream", required=True, help="host:port of the emulator")
    args = parser.parse_args()
    host, port = args.listen.rsplit(":", 1)
    up_host, up_port = args.upstream.rsplit(":", 1)
    upstream = (up_host, int(up_port))
    server = await asyncio.start_server(
        lambda r, w: serve_client(r, w, upstream), host, int(port), limit=2**24, backlog=1024
    )
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
