"""Creates the demo device the example commands in schemas/examples/ talk about.

Run by scripts/local-stack.sh inside the project's venv, against the emulator. Idempotent.
"""

import json
import os

import boto3

iot = boto3.client("iot", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
THING, GROUP, POLICY = "sensor-0001", "demo-fleet", "demo-device-policy"
document = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*"}]}

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
    iot.create_policy(policyName=POLICY, policyDocument=json.dumps(document))
    iot.attach_policy(policyName=POLICY, target=cert["certificateArn"])
    iot.attach_thing_principal(thingName=THING, principal=cert["certificateArn"])
    print(f"created demo thing {THING} with certificate {cert['certificateId'][:12]}..., policy {POLICY}, group {GROUP}")

# Example provisioning templates (infra/templates/) and what they refer to.
s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
bucket = os.environ["CDF_BUCKET"]
templates = os.path.join(os.path.dirname(__file__), "..", "infra", "templates")
uploaded = []
for name in sorted(os.listdir(templates)):
    if name.endswith(".json"):
        with open(os.path.join(templates, name), "rb") as body:
            s3.put_object(Bucket=bucket, Key=f"templates/{name}", Body=body.read())
        uploaded.append(name[:-5])
print(f"uploaded templates to s3://{bucket}/templates/: {', '.join(uploaded)}")

for create in (
    lambda: iot.create_policy(policyName="cdf-example-device", policyDocument=json.dumps(document)),
    lambda: iot.create_thing_group(thingGroupName="cdf-example-eu"),
    lambda: iot.create_thing_group(thingGroupName="cdf-example-us"),
    lambda: iot.create_thing_type(thingTypeName="cdf-example-thermometer"),
):
    try:
        create()
    except iot.exceptions.ResourceAlreadyExistsException:
        pass

# A device CA registered in IoT, its key where createDeviceCertificate looks for it.
import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

key = ec.generate_private_key(ec.SECP256R1())
name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cdf-provisioning demo device CA")])
now = datetime.datetime.now(datetime.timezone.utc)
ca = (
    x509.CertificateBuilder()
    .subject_name(name)
    .issuer_name(name)
    .public_key(key.public_key())
    .serial_number(x509.random_serial_number())
    .not_valid_before(now)
    .not_valid_after(now + datetime.timedelta(days=3650))
    .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    .sign(key, hashes.SHA256())
)
ca_pem = ca.public_bytes(serialization.Encoding.PEM).decode()
ca_id = iot.register_ca_certificate(caCertificate=ca_pem, verificationCertificate=ca_pem, setAsActive=True)["certificateId"]
s3.put_object(
    Bucket=bucket,
    Key=f"ca-keys/{ca_id}.pem",
    Body=key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
)
with open(os.path.join(os.path.dirname(__file__), "..", ".local", "demo-ca-id"), "w") as out:
    out.write(ca_id)
print(f"registered demo CA {ca_id[:12]}...; its key is at s3://{bucket}/ca-keys/{ca_id}.pem")
