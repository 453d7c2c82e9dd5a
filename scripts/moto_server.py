"""Runs moto server with the corrections that make it behave as AWS IoT does where the
difference would hide this service's bugs. Usage: python moto_server.py -H 127.0.0.1 -p PORT

Corrections (moto 5.2.5; each one is a place where stock moto is kinder than AWS):
- IoT certificate ids are the SHA-256 of the DER, as on AWS (moto's `use_valid_cert`).
- CreateCertificateFromCsr creates the certificate INACTIVE unless `setAsActive` is true
  (moto reads the flag as a truthy string, so "false" made every certificate ACTIVE).
- CreateCertificateFromCsr certifies the CSR's own public key (moto made a fresh key), so
  a resumed attempt can recognise the certificate its predecessor obtained.
- ListCertificates honours `ascendingOrder` (default: newest first), `pageSize` and
  `marker` (moto returned every certificate, oldest first, on one page).
- CreatePolicy refuses a document AWS IoT would refuse with MalformedPolicyException: not a
  JSON object, no Statement, a statement whose Effect is not Allow or Deny, or without Action
  or Resource (moto stored anything).

One change of cost, not behaviour: moto's TransactWriteItems deep-copies every table it names
before writing, to roll back on failure, so each transaction costs time and memory in
proportion to the whole table (a bulk task's counted rows slowed to 1.4 rows/s and the
emulator passed 12 GB). Here only the items the transaction names are saved and restored; the
outcome, all or nothing, is the same.
"""

import datetime
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
import copy
import types

import moto.dynamodb.models as dynamodb_models
from moto.core.config import default_user_config
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.core.responses import ActionResult
from moto.iot.exceptions import IoTClientError
from moto.iot.models import IoTBackend
from moto.iot.responses import IoTResponse

default_user_config["iot"]["use_valid_cert"] = True

_CA_KEY = ec.generate_private_key(ec.SECP256R1())
_CA_NAME = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Emulated AWS IoT CA")])


def create_certificate_from_csr(self, csr, set_as_active):
    request = x509.load_pem_x509_csr(csr.encode("utf-8"))
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(_CA_NAME)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=365))
        .sign(_CA_KEY, hashes.SHA256())
    )
    pem = certificate.public_bytes(encoding=Encoding.PEM).decode("utf-8")
    return self.register_certificate(pem, ca_certificate_pem=None, set_as_active=set_as_active, status="INACTIVE")


def create_certificate_from_csr_response(self):
    cert = self.iot_backend.create_certificate_from_csr(
        self._get_param("certificateSigningRequest"),
        set_as_active=self._get_bool_param("setAsActive", False),
    )
    return ActionResult(
        {"certificateId": cert.certificate_id, "certificateArn": cert.arn, "certificatePem": cert.certificate_pem}
    )


def list_certificates_response(self):
    ascending = self._get_bool_param("ascendingOrder", False)
    page_size = self._get_int_param("pageSize", 25)
    start = int(self._get_param("marker") or 0)
    certificates = sorted(self.iot_backend.list_certificates(), key=lambda c: c.creation_date, reverse=not ascending)
    page = certificates[start : start + page_size]
    result = {"certificates": [c.to_dict() for c in page]}
    if start + page_size < len(certificates):
        result["nextMarker"] = str(start + page_size)
    return ActionResult(result)


class MalformedPolicyException(IoTClientError):
    def __init__(self, message):
        super().__init__("MalformedPolicyException", message)


def _policy_problem(document):
    try:
        policy = json.loads(document) if isinstance(document, str) else document
    except ValueError:
        return "the policy document is not JSON"
    if not isinstance(policy, dict) or "Statement" not in policy:
        return "the policy document has no Statement"
    statements = policy["Statement"] if isinstance(policy["Statement"], list) else [policy["Statement"]]
    for statement in statements:
        if not isinstance(statement, dict) or statement.get("Effect") not in ("Allow", "Deny"):
            return "each statement needs an Effect of Allow or Deny"
        if "Action" not in statement or "Resource" not in statement:
            return "each statement needs an Action and a Resource"
    return None


_moto_create_policy = IoTBackend.create_policy


def create_policy(self, policy_name, policy_document):
    problem = _policy_problem(policy_document)
    if problem:
        raise MalformedPolicyException(problem)
    return _moto_create_policy(self, policy_name, policy_document)


IoTBackend.create_policy = create_policy


def _named_items(backend, transact_items):
    """(table, hash key, range key, a copy of the item or None) for every item named."""
    saved = []
    for entry in transact_items:
        op_type, op = next(iter(entry.items()))
        table = backend.tables.get(op.get("TableName"))
        if table is None:
            continue
        key = op.get("Key")
        if op_type == "Put":
            attrs = op.get("Item", {})
            key = {a: attrs[a] for a in (table.hash_key_attr, table.range_key_attr) if a and a in attrs}
        try:
            hash_key, range_key = backend.get_keys_value(table, key or {})
            current = table.get_item(hash_key, range_key)
        except Exception:  # moto reports the malformed key itself
            continue
        saved.append((table, hash_key, range_key, copy.deepcopy(current)))
    return saved


def _restore(saved):
    for table, hash_key, range_key, item in reversed(saved):
        if item is None:
            if range_key is not None:
                table.items.get(hash_key, {}).pop(range_key, None)
            else:
                table.items.pop(hash_key, None)
        elif range_key is not None:
            table.items[hash_key][range_key] = item
        else:
            table.items[hash_key] = item


# moto's own implementation, with its whole-table copies made free (a table "copy" is the table
# itself, so its rollback assignment changes nothing) and the named items restored instead.
dynamodb_models.copy = types.SimpleNamespace(
    deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo),
    copy=copy.copy,
)
_moto_transact_write_items = DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    saved = _named_items(self, transact_items)
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        _restore(saved)
        raise


DynamoDBBackend.transact_write_items = transact_write_items
IoTBackend.create_certificate_from_csr = create_certificate_from_csr
IoTResponse.create_certificate_from_csr = create_certificate_from_csr_response
IoTResponse.list_certificates = list_certificates_response

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
