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

One addition: RegisterThing, which moto lacks (AWS IoT evaluates a provisioning template
itself; this service's `registerThing` mode hands templates to it). The emulation evaluates the
template functions AWS documents (Ref, Fn::Join, Fn::Select, Fn::Split, Fn::FindInMap, Fn::If
with Conditions, Fn::Equals/Not/And/Or, Fn::Sub), checks every resource the template names
(thing type, groups, billing group, certificate, policy) before it makes anything, and answers
as AWS does: `InvalidRequestException` for a template that does not evaluate,
`ResourceRegistrationFailureException` for a resource that cannot be registered, and on success
the certificate PEM with `resourceArns` keyed `thing`, `certificate` and `PolicyLogicalName`.

One correction of concurrency: moto serves requests on many threads but its IoT and DynamoDB
backends are plain dictionaries with no lock, while AWS answers each call as one atomic step.
Under the end-to-end tests' load this showed as a DeleteCertificate answered 500 ("OrderedDict
mutated during iteration"), and worse, as a DeleteCertificate answered ResourceNotFound for a
certificate that existed (its check looks up every attached principal, and another thread had
just deleted one), which a client rightly takes as "already deleted"; a conditional DynamoDB
write could likewise interleave its check and its write with another's. Here each IoT call and
each DynamoDB call runs alone (one lock per service); SQS, S3 and the rest keep moto's
threading, so long polls do not hold anything up.

One change of cost, not behaviour: moto's TransactWriteItems deep-copies every table it names
before writing, to roll back on failure, so each transaction costs time and memory in
proportion to the whole table (a bulk task's counted rows slowed to 1.4 rows/s and the
emulator passed 12 GB). Here only the items the transaction names are saved and restored; the
outcome, all or nothing, is the same.
"""

import datetime
import hashlib
import json
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
import copy
import threading
import types

import moto.dynamodb.models as dynamodb_models
from moto.core.config import default_user_config
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.responses import DynamoHandler
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


_moto_transact_write_items = DynamoDBBackend.transact_write_items


def transact_write_items(self, transact_items):
    """moto's own implementation, with its whole-table copies made free (see the patch of
    `dynamodb_models.copy` below) and the named items restored instead."""
    saved = _named_items(self, transact_items)
    try:
        return _moto_transact_write_items(self, transact_items)
    except Exception:
        _restore(saved)
        raise


class ResourceRegistrationFailureException(IoTClientError):
    def __init__(self, message):
        super().__init__("ResourceRegistrationFailureException", message)


class InvalidTemplate(IoTClientError):
    def __init__(self, message):
        super().__init__("InvalidRequestException", message)


_UNSET = object()


class _Template:
    """A provisioning template evaluated against its parameters, as RegisterThing does."""

    def __init__(self, body, parameters):
        try:
            self.doc = json.loads(body)
        except ValueError:
            raise InvalidTemplate("the template body is not JSON")
        if not isinstance(self.doc, dict) or not isinstance(self.doc.get("Resources"), dict):
            raise InvalidTemplate("the template has no Resources")
        self.values = {}
        for name, spec in (self.doc.get("Parameters") or {}).items():
            value = parameters.get(name, (spec or {}).get("Default", _UNSET))
            if value is not _UNSET:
                self.values[name] = value
        self.conditions = {}
        for name, expression in (self.doc.get("Conditions") or {}).items():
            self.conditions[name] = bool(self.eval(expression))

    def eval(self, node):
        if isinstance(node, list):
            return [self.eval(item) for item in node]
        if not isinstance(node, dict):
            return node
        if len(node) != 1:
            return {key: self.eval(value) for key, value in node.items()}
        (function, argument), = node.items()
        if function == "Ref":
            if argument not in self.values:
                raise InvalidTemplate(f"parameter {argument} has no value")
            return self.values[argument]
        if function == "Fn::Join":
            separator, items = argument
            return separator.join(str(i) for i in self.eval(items))
        if function == "Fn::Select":
            index, items = self.eval(argument)
            items = items if isinstance(items, list) else []
            if not 0 <= int(index) < len(items):
                raise InvalidTemplate(f"Fn::Select index {index} is out of range")
            return items[int(index)]
        if function == "Fn::Split":
            separator, text = self.eval(argument)
            return text.split(separator)
        if function == "Fn::FindInMap":
            mapping, first, second = self.eval(argument)
            try:
                return self.doc["Mappings"][mapping][first][second]
            except (KeyError, TypeError):
                raise InvalidTemplate(f"Fn::FindInMap found nothing at {mapping}/{first}/{second}")
        if function == "Fn::If":
            condition, yes, no = argument
            return self.eval(yes if self.conditions.get(condition) else no)
        if function == "Fn::Equals":
            left, right = self.eval(argument)
            return left == right
        if function == "Fn::Not":
            return not self.eval(argument[0])
        if function == "Fn::And":
            return all(self.eval(argument))
        if function == "Fn::Or":
            return any(self.eval(argument))
        if function == "Fn::Sub":
            text = argument if isinstance(argument, str) else argument[0]
            for name, value in self.values.items():
                text = text.replace("${" + name + "}", str(value))
            return text
        if function.startswith("Fn::"):
            raise InvalidTemplate(f"unsupported function {function}")
        return {function: self.eval(argument)}

    def resources(self, kind):
        for name, resource in self.doc["Resources"].items():
            if resource.get("Type") != kind:
                continue
            condition = resource.get("Condition")
            if condition is not None and not self.conditions.get(condition):
                continue
            yield name, self.eval(resource.get("Properties") or {})


def _exists(lookup, what):
    try:
        return lookup()
    except Exception:
        raise ResourceRegistrationFailureException(f"{what} does not exist")


def register_thing(self, template_body, parameters):
    template = _Template(template_body, parameters or {})
    things = list(template.resources("AWS::IoT::Thing"))
    certificates = list(template.resources("AWS::IoT::Certificate"))
    policies = list(template.resources("AWS::IoT::Policy"))
    if len(things) > 1 or len(certificates) > 1:
        raise InvalidTemplate("a template provisions one thing and one certificate")
    # Everything the template names must exist before anything is made.
    thing = things[0][1] if things else None
    if thing is not None:
        if not thing.get("ThingName"):
            raise InvalidTemplate("the thing has no ThingName")
        if thing.get("ThingTypeName"):
            _exists(lambda: self.describe_thing_type(thing["ThingTypeName"]), f"thing type {thing['ThingTypeName']}")
        for group in thing.get("ThingGroups") or []:
            _exists(lambda: self.describe_thing_group(group), f"thing group {group}")
        if thing.get("BillingGroup"):
            _exists(lambda: self.describe_billing_group(thing["BillingGroup"]), f"billing group {thing['BillingGroup']}")
    certificate = certificates[0][1] if certificates else None
    if certificate is not None and certificate.get("CertificateId"):
        _exists(lambda: self.describe_certificate(certificate["CertificateId"]), f"certificate {certificate['CertificateId']}")
    for _, policy in policies:
        if policy.get("PolicyName") and not policy.get("PolicyDocument"):
            _exists(lambda: self.get_policy(policy["PolicyName"]), f"policy {policy['PolicyName']}")
        elif policy.get("PolicyDocument"):
            problem = _policy_problem(policy["PolicyDocument"])
            if problem:
                raise MalformedPolicyException(problem)

    arns, pem = {}, None
    if thing is not None:
        name = thing["ThingName"]
        try:
            existing = self.describe_thing(name)
        except Exception:
            existing = None
        if existing is None:
            attributes = {"attributes": thing.get("AttributePayload") or {}}
            made = self.create_thing(name, thing.get("ThingTypeName"), attributes, thing.get("BillingGroup"))
            arns["thing"] = made[1] if isinstance(made, tuple) else made.arn
        elif (thing.get("OverrideSettings") or {}).get("ThingName") == "FAIL":
            raise ResourceRegistrationFailureException(f"thing {name} exists")
        else:
            arns["thing"] = existing.arn
        for group in thing.get("ThingGroups") or []:
            self.add_thing_to_thing_group(group, None, name, None)
    cert = None
    if certificate is not None:
        if certificate.get("CertificateId"):
            cert = self.describe_certificate(certificate["CertificateId"])
        elif certificate.get("CertificateSigningRequest"):
            cert = self.create_certificate_from_csr(certificate["CertificateSigningRequest"], False)
        elif certificate.get("CertificatePem"):
            cert = self.register_certificate(
                certificate["CertificatePem"], certificate.get("CACertificatePem"), False, "INACTIVE"
            )
        else:
            raise InvalidTemplate("the certificate needs CertificateId, CertificateSigningRequest or CertificatePem")
        if certificate.get("Status"):
            self.update_certificate(cert.certificate_id, certificate["Status"])
        arns["certificate"] = cert.arn
        pem = cert.certificate_pem
        if thing is not None:
            self.attach_thing_principal(thing["ThingName"], cert.arn)
    for _, policy in policies:
        if policy.get("PolicyDocument"):
            document = policy["PolicyDocument"]
            text = document if isinstance(document, str) else json.dumps(document)
            # AWS names such a policy by a 40-digit hexadecimal digest of its own.
            policy_name = hashlib.sha1(text.encode("utf-8")).hexdigest().upper()
            try:
                made = self.get_policy(policy_name)
            except Exception:
                made = self.create_policy(policy_name, text)
        else:
            made = self.get_policy(policy["PolicyName"])
        arns["PolicyLogicalName"] = made.arn
        if cert is not None:
            self.attach_policy(made.name, cert.arn)
    return pem, arns


def register_thing_response(self):
    pem, arns = self.iot_backend.register_thing(self._get_param("templateBody"), self._get_param("parameters"))
    result = {"resourceArns": arns}
    if pem:
        result["certificatePem"] = pem
    return ActionResult(result)


def _one_at_a_time(handler):
    """Makes every call `handler` serves run alone, as one atomic step, as AWS does."""
    lock = threading.Lock()
    call_action = handler.call_action

    def serialised(self):
        with lock:
            return call_action(self)

    handler.call_action = serialised


# Every correction, installed in one place.
_one_at_a_time(IoTResponse)
_one_at_a_time(DynamoHandler)

IoTBackend.register_thing = register_thing
IoTResponse.register_thing = register_thing_response
IoTBackend.create_certificate_from_csr = create_certificate_from_csr
IoTResponse.create_certificate_from_csr = create_certificate_from_csr_response
IoTResponse.list_certificates = list_certificates_response
IoTBackend.create_policy = create_policy

# A table "copy" in moto's transactions is the table itself, so its rollback assignment changes
# nothing; `transact_write_items` restores the named items instead.
dynamodb_models.copy = types.SimpleNamespace(
    deepcopy=lambda value, memo=None: value if isinstance(value, Table) else copy.deepcopy(value, memo),
    copy=copy.copy,
)
DynamoDBBackend.transact_write_items = transact_write_items

if __name__ == "__main__":
    from moto.server import main

    main(sys.argv[1:])
