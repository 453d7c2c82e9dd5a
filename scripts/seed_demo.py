"""Creates the demo device the example commands in schemas/examples/ talk about.

Run by scripts/local-stack.sh inside the project's venv, against the emulator. Idempotent.
"""

import json
import os

import boto3

iot = boto3.client("iot", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
THING, GROUP, POLICY = "sensor-0001", "demo-fleet", "demo-device-policy"

try:
    iot.describe_thing(thingName=THING)
    print(f"demo thing {THING} exists")
except iot.exceptions.ResourceNotFoundException:
    iot.create_thing_type(thingTypeName="thermometer")
    iot.create_thing(
        thingName=THING,
        thingTypeName="thermometer",
        attributePayload={"attributes": {"site": "berlin", "floor": "3"}},
    )
    iot.create_thing_group(
        thingGroupName=GROUP,
        thingGroupProperties={"attributePayload": {"attributes": {"region": "eu-central"}}},
    )
    iot.add_thing_to_thing_group(thingName=THING, thingGroupName=GROUP)
    cert = iot.create_keys_and_certificate(setAsActive=True)
    document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}
    iot.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
    iot.attach_policy(policyName=POLICY, target=cert["certificateArn"])
    iot.attach_thing_principal(thingName=THING, principal=cert["certificateArn"])
    print(f"created demo thing {THING} with certificate {cert['certificateId'][:12]}..., policy {POLICY}, group {GROUP}")
