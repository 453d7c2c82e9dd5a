//! Every broken template or parameter set is refused before any AWS call, with the JSON path
//! at fault and a reason. One row per mistake.

use std::collections::BTreeMap;

use cdf_provisioning::domain::template::plan::{CertificateSource, InitialStatus, KeyAlgorithm, Override};
use cdf_provisioning::domain::template::{Culprit, Template};
use serde_json::{Value, json};

use crate::support::examples;

/// A real P-256 CSR (the engine checks CSRs in full).
const CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----\nMIHLMHICAQAwEDEOMAwGA1UEAwwFZGV2LTEwWTATBgcqhkjOPQIBBggqhkjOPQMB\nBwNCAATczgfER1Jm/jVSYVGxDY/WW+NB8wi5btkyEb5epHDv+tibWSQyDlnekNgJ\nWbbMSwHSPn5P56V7ikSxMA58XepdoAAwCgYIKoZIzj0EAwIDSQAwRgIhANTISUyq\nNVRyDz2/ZIPvbe7zfy06IC+m8qvjsHN4LzHsAiEA5G8cFzvrAo1w0hWFd3qOVmwS\nLqdxf29elq2oqxIYxEE=\n-----END CERTIFICATE REQUEST-----";
/// A real CSR for an RSA-1024 key, which AWS IoT refuses.
const WEAK_CSR: &str = "-----BEGIN CERTIFICATE REQUEST-----\nMIIBTjCBuAIBADAPMQ0wCwYDVQQDDAR3ZWFrMIGfMA0GCSqGSIb3DQEBAQUAA4GN\nADCBiQKBgQDS3+FRjUeSja+Agp54jvM3Fa4Jx9PXrbJCSpJSOJWE7oO9N3Tb2dU5\n+lFcJPcrP2PmqXtoogjwnr56e/55M8AmWDJwzeHQe0gjIdtmm6lU4ysa7IhmMFrw\nNCgC+6oW6AI4QmBPIse/5J72NkNzWYMb9M+HNkRni/6pn/iVhV5GrQIDAQABoAAw\nDQYJKoZIhvcNAQELBQADgYEAG0hMpOwPl7lf/Jm5GfXnXZABlhYVDZ8F7rT4wd1K\npi8Vzz6CTjtNmlIePjNQJqn8ZqdbwV6pEnIiLTxJatK2nkgsStUhV8iklLzdztTj\nPKicPgRPpfyO/yRu+3WzPrTq402At6RY+msBzaNf01GXhXXOA+svqLCEJ8zKsP5O\nAH0=\n-----END CERTIFICATE REQUEST-----";

/// A valid CSR template to break in one place at a time.
fn base() -> Value {
    json!({
        "Parameters": {
            "ThingName": {"Type": "String"},
            "CSR": {"Type": "String"},
            "Site": {"Type": "String", "Default": "berlin"}
        },
        "Mappings": {"Sites": {"berlin": {"Group": "eu-fleet"}}},
        "Resources": {
            "thing": {
                "Type": "AWS::IoT::Thing",
                "Properties": {
                    "ThingName": {"Ref": "ThingName"},
                    "AttributePayload": {"site": {"Ref": "Site"}},
                    "ThingGroups": [{"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Group"]}]
                },
                "OverrideSettings": {"AttributePayload": "MERGE", "ThingGroups": "DO_NOTHING"}
            },
            "certificate": {
                "Type": "AWS::IoT::Certificate",
                "Properties": {"CertificateSigningRequest": {"Ref": "CSR"}, "Status": "ACTIVE"}
            },
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyName": "device-policy"}}
        }
    })
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn good_params() -> BTreeMap<String, String> {
    params(&[("ThingName", "dev-1"), ("CSR", CSR)])
}

/// Applies `edit` (a JSON pointer and a new value; `null` removes) to the base template.
fn broken(edits: &[(&str, Value)]) -> Value {
    let mut t = base();
    for (pointer, value) in edits {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = t.pointer_mut(parent).unwrap_or_else(|| panic!("no {parent}"));
        let map = target.as_object_mut().unwrap();
        if value.is_null() {
            map.remove(key);
        } else {
            map.insert(key.to_owned(), value.clone());
        }
    }
    t
}

struct Case {
    name: &'static str,
    template: Value,
    parameters: BTreeMap<String, String>,
    cdf: Value,
    culprit: Culprit,
    path: &'static str,
    message: &'static str,
}

fn case(name: &'static str, template: Value, path: &'static str, message: &'static str) -> Case {
    Case { name, template, parameters: good_params(), cdf: Value::Null, culprit: Culprit::Template, path, message }
}

fn cdf_template(cdf: Value, cert_props: Value) -> Value {
    let mut t = base();
    t["CDF"] = cdf;
    t["Parameters"]["CertificateId"] = json!({"Type": "String"});
    t["Parameters"]["CertificatePem"] = json!({"Type": "String"});
    t["Parameters"]["CaCertificatePem"] = json!({"Type": "String"});
    t["Resources"]["certificate"]["Properties"] = cert_props;
    t
}

fn cases() -> Vec<Case> {
    let c = "/Resources/certificate/Properties";
    let by_id = json!({"CertificateId": {"Ref": "CertificateId"}});
    vec![
        case("not an object", json!([1]), "/", "must be an object"),
        case("unknown section", broken(&[("/Resource", json!({}))]), "/Resource", "unknown section"),
        case("no resources", broken(&[("/Resources", Value::Null)]), "/Resources", "no Resources section"),
        case("empty resources", broken(&[("/Resources", json!({}))]), "/Resources", "must not be empty"),
        case(
            "parameter without type",
            broken(&[("/Parameters/Site", json!({"Default": "x"}))]),
            "/Parameters/Site/Type",
            "no Type",
        ),
        case(
            "number parameter",
            broken(&[("/Parameters/Site", json!({"Type": "Number"}))]),
            "/Parameters/Site/Type",
            "not supported",
        ),
        case(
            "non-string default",
            broken(&[("/Parameters/Site", json!({"Type": "String", "Default": 3}))]),
            "/Parameters/Site/Default",
            "must be a string",
        ),
        case("bad mapping", broken(&[("/Mappings", json!({"Sites": ["x"]}))]), "/Mappings/Sites", "object of objects"),
        case(
            "ref to nothing",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Ref": "Name"}))]),
            "/Resources/thing/Properties/ThingName/Ref",
            "not a declared parameter",
        ),
        case(
            "unknown function",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::If": ["a", "b", "c"]}))]),
            "/Resources/thing/Properties/ThingName/Fn::If",
            "unknown function",
        ),
        case(
            "join arity",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Join": ["-"]}))]),
            "/Resources/thing/Properties/ThingName/Fn::Join",
            "takes 2 arguments, got 1",
        ),
        case(
            "join of non-list",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Join": ["-", "ab"]}))]),
            "/Resources/thing/Properties/ThingName/Fn::Join/1",
            "needs a list",
        ),
        case(
            "select out of range",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Select": [5, ["a", "b"]]}))]),
            "/Resources/thing/Properties/ThingName/Fn::Select/0",
            "out of range",
        ),
        case(
            "select negative",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Select": [-1, ["a"]]}))]),
            "/Resources/thing/Properties/ThingName/Fn::Select/0",
            "non-negative integer",
        ),
        case(
            "split empty delimiter",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Select": [0, {"Fn::Split": ["", "a"]}]}))]),
            "/Resources/thing/Properties/ThingName/Fn::Select/1/Fn::Split/0",
            "must not be empty",
        ),
        case(
            "sub unknown variable",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Sub": "dev-${Serial}"}))]),
            "/Resources/thing/Properties/ThingName/Fn::Sub",
            "${Serial}",
        ),
        case(
            "sub unclosed",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Sub": "dev-${ThingName"}))]),
            "/Resources/thing/Properties/ThingName/Fn::Sub",
            "unclosed",
        ),
        case(
            "find in missing map",
            broken(&[("/Resources/thing/Properties/ThingGroups", json!([{"Fn::FindInMap": ["Regions", "x", "y"]}]))]),
            "/Resources/thing/Properties/ThingGroups/0/Fn::FindInMap/0",
            "no mapping named",
        ),
        case(
            "find in missing key",
            broken(&[(
                "/Resources/thing/Properties/ThingGroups",
                json!([{"Fn::FindInMap": ["Sites", "paris", "Group"]}]),
            )]),
            "/Resources/thing/Properties/ThingGroups/0/Fn::FindInMap/1",
            "has no key \"paris\"",
        ),
        case(
            "unknown resource type",
            broken(&[("/Resources/role", json!({"Type": "AWS::IAM::Role", "Properties": {}}))]),
            "/Resources/role/Type",
            "not supported",
        ),
        case(
            "resource without properties",
            broken(&[("/Resources/policy/Properties", Value::Null)]),
            "/Resources/policy/Properties",
            "no Properties",
        ),
        case(
            "unknown resource attribute",
            broken(&[("/Resources/policy/DependsOn", json!("thing"))]),
            "/Resources/policy/DependsOn",
            "unknown resource attribute",
        ),
        case(
            "thing without name",
            broken(&[("/Resources/thing/Properties/ThingName", Value::Null)]),
            "/Resources/thing/Properties/ThingName",
            "ThingName is required",
        ),
        case(
            "invalid literal thing name",
            broken(&[("/Resources/thing/Properties/ThingName", json!("my thing"))]),
            "/Resources/thing/Properties/ThingName",
            "only letters, digits",
        ),
        case(
            "unknown thing property",
            broken(&[("/Resources/thing/Properties/Tags", json!([]))]),
            "/Resources/thing/Properties/Tags",
            "unknown property",
        ),
        case(
            "attribute not a string",
            broken(&[("/Resources/thing/Properties/AttributePayload", json!({"floor": 3}))]),
            "/Resources/thing/Properties/AttributePayload/floor",
            "must be strings",
        ),
        case(
            "too many attributes without a type",
            broken(&[(
                "/Resources/thing/Properties/AttributePayload",
                json!({"a": "1", "b": "2", "c": "3", "d": "4"}),
            )]),
            "/Resources/thing/Properties/AttributePayload",
            "at most 3 attributes",
        ),
        case(
            "groups not a list",
            broken(&[("/Resources/thing/Properties/ThingGroups", json!("fleet"))]),
            "/Resources/thing/Properties/ThingGroups",
            "must be a list",
        ),
        case(
            "merge thing type",
            broken(&[("/Resources/thing/OverrideSettings", json!({"ThingTypeName": "MERGE"}))]),
            "/Resources/thing/OverrideSettings/ThingTypeName",
            "must be one of",
        ),
        case(
            "unknown override",
            broken(&[("/Resources/thing/OverrideSettings", json!({"ThingName": "REPLACE"}))]),
            "/Resources/thing/OverrideSettings/ThingName",
            "no override setting",
        ),
        case(
            "policy override",
            broken(&[("/Resources/policy/OverrideSettings", json!({"PolicyName": "REPLACE"}))]),
            "/Resources/policy/OverrideSettings/PolicyName",
            "takes no OverrideSettings",
        ),
        case(
            "two things",
            broken(&[("/Resources/thing2", json!({"Type": "AWS::IoT::Thing", "Properties": {"ThingName": "other"}}))]),
            "/Resources/thing2",
            "only one AWS::IoT::Thing",
        ),
        case(
            "two certificates",
            broken(&[(
                "/Resources/cert2",
                json!({"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": "abc"}}),
            )]),
            "/Resources/certificate",
            "only one AWS::IoT::Certificate",
        ),
        case(
            "certificate with two sources",
            broken(&[("/Resources/certificate/Properties/CertificateId", json!("abc"))]),
            c,
            "exactly one of",
        ),
        case(
            "certificate with no source",
            broken(&[("/Resources/certificate/Properties", json!({"Status": "ACTIVE"}))]),
            c,
            "found 0",
        ),
        case(
            "ca pem alone",
            broken(&[("/Resources/certificate/Properties", json!({"CertificateId": "abc", "CACertificatePem": "x"}))]),
            "/Resources/certificate/Properties/CACertificatePem",
            "goes with CertificatePem",
        ),
        case(
            "bad certificate status",
            broken(&[("/Resources/certificate/Properties/Status", json!("REVOKED"))]),
            "/Resources/certificate/Properties/Status",
            "ACTIVE or INACTIVE",
        ),
        case(
            "policy name and document",
            broken(&[("/Resources/policy/Properties/PolicyDocument", json!("{\"Statement\": []}"))]),
            "/Resources/policy/Properties",
            "not both",
        ),
        case(
            "policy document not json",
            broken(&[("/Resources/policy/Properties", json!({"PolicyDocument": "{Statement"}))]),
            "/Resources/policy/Properties/PolicyDocument",
            "not valid JSON",
        ),
        case(
            "policy document without statement",
            broken(&[("/Resources/policy/Properties", json!({"PolicyDocument": "{\"Version\": \"2012-10-17\"}"}))]),
            "/Resources/policy/Properties/PolicyDocument",
            "with a Statement",
        ),
        case(
            "unknown CDF key",
            {
                let mut t = base();
                t["CDF"] = json!({"createDeviceCertificates": true});
                t
            },
            "/CDF/createDeviceCertificates",
            "unknown CDF extension",
        ),
        case(
            "CDF flag not boolean",
            {
                let mut t = base();
                t["CDF"] = json!({"clientIdMustMatchThingName": "yes"});
                t
            },
            "/CDF/clientIdMustMatchThingName",
            "true or false",
        ),
        case(
            "ACM PCA",
            {
                let mut t = base();
                t["CDF"] = json!({"acmpca": {"mode": "REGISTER_WITHOUT_CA"}});
                t
            },
            "/CDF/acmpca",
            "not supported",
        ),
        case(
            "two certificate extensions",
            cdf_template(json!({"createDeviceCertificate": true, "createDeviceAWSCertificate": true}), by_id.clone()),
            "/CDF",
            "only one certificate extension",
        ),
        case(
            "bad key algorithm",
            {
                let mut t = base();
                t["CDF"] = json!({"keyAlgorithm": "DSA"});
                t
            },
            "/CDF/keyAlgorithm",
            "ECDSA_P256",
        ),
        case(
            "additional policy without name",
            {
                let mut t = base();
                t["CDF"] = json!({"attachAdditionalPolicies": [{"document": "{\"Statement\": []}"}]});
                t
            },
            "/CDF/attachAdditionalPolicies/0/name",
            "required",
        ),
        case(
            "additional policies as object (the docs' form)",
            {
                let mut t = base();
                t["CDF"] = json!({"attachAdditionalPolicies": {"policies": []}});
                t
            },
            "/CDF/attachAdditionalPolicies",
            "must be a list",
        ),
        case(
            "aws certificate not referenced",
            cdf_template(
                json!({"createDeviceAWSCertificate": true}),
                json!({"CertificateSigningRequest": {"Ref": "CSR"}}),
            ),
            c,
            "makes the certificate",
        ),
        Case {
            culprit: Culprit::Request,
            ..case(
                "injected parameter without extension",
                {
                    let mut t = cdf_template(json!({}), by_id.clone());
                    t.as_object_mut().unwrap().remove("CDF");
                    t
                },
                "/parameters/CertificateId",
                "is required",
            )
        },
        Case {
            parameters: params(&[("CSR", CSR)]),
            culprit: Culprit::Request,
            ..case(
                "missing parameter",
                base(),
                "/parameters/ThingName",
                "used at /Resources/thing/Properties/ThingName/Ref",
            )
        },
        Case {
            parameters: params(&[("ThingName", "a b"), ("CSR", CSR)]),
            culprit: Culprit::Request,
            ..case(
                "invalid thing name from a parameter",
                base(),
                "/parameters/ThingName",
                "only letters, digits, ':', '_' and '-' are allowed (used at /Resources/thing/Properties/ThingName",
            )
        },
        Case {
            parameters: params(&[("ThingName", &"x".repeat(4097)), ("CSR", CSR)]),
            culprit: Culprit::Request,
            ..case("parameter too long", base(), "/parameters/ThingName", "limited to 4096")
        },
        Case {
            parameters: params(&[("ThingName", "dev-1"), ("CSR", &CSR.replacen("MIH", "M*H", 1))]),
            culprit: Culprit::Request,
            ..case("CSR with broken base64", base(), "/parameters/CSR", "its base64 does not decode")
        },
        Case {
            parameters: params(&[("ThingName", "dev-1"), ("CSR", WEAK_CSR)]),
            culprit: Culprit::Request,
            ..case("RSA-1024 CSR", base(), "/parameters/CSR", "an RSA key of 1024 bits; AWS IoT needs at least 2048")
        },
        case(
            "attribute value outside IoT's pattern",
            broken(&[("/Resources/thing/Properties/AttributePayload/site", json!("Berlin Mitte"))]),
            "/Resources/thing/Properties/AttributePayload/site",
            "letters, digits and _.,@/:#=[]- (AWS IoT's pattern)",
        ),
        Case {
            parameters: params(&[("ThingName", "dev\u{1}1"), ("CSR", CSR)]),
            culprit: Culprit::Request,
            ..case(
                "control character in a parameter",
                base(),
                "/parameters/ThingName",
                "control characters (found U+0001)",
            )
        },
        Case {
            parameters: params(&[("ThingName", "dev"), ("CSR", "not a csr")]),
            culprit: Culprit::Request,
            ..case(
                "CSR not PEM",
                base(),
                "/parameters/CSR",
                "not a PEM certificate signing request (no block, or its base64 does not decode) (used at /Resources/certificate/Properties/CertificateSigningRequest)",
            )
        },
        Case {
            cdf: json!({"certInfo": {"commonName": "x"}}),
            culprit: Culprit::Request,
            ..case(
                "createDeviceCertificate without caId",
                cdf_template(
                    json!({"createDeviceCertificate": true}),
                    json!({"CertificatePem": {"Ref": "CertificatePem"}, "CACertificatePem": {"Ref": "CaCertificatePem"}}),
                ),
                "/cdfProvisioningParameters/caId",
                "caId is required",
            )
        },
        Case {
            cdf: json!({"caId": "abc"}),
            culprit: Culprit::Request,
            ..case(
                "createDeviceCertificate without certInfo",
                cdf_template(
                    json!({"createDeviceCertificate": true}),
                    json!({"CertificatePem": {"Ref": "CertificatePem"}}),
                ),
                "/cdfProvisioningParameters/certInfo",
                "certInfo is required",
            )
        },
        Case {
            cdf: json!({"caId": "abc", "certInfo": {"commonName": "x", "country": "Germany"}}),
            culprit: Culprit::Request,
            ..case(
                "bad country",
                cdf_template(
                    json!({"createDeviceCertificate": true}),
                    json!({"CertificatePem": {"Ref": "CertificatePem"}}),
                ),
                "/cdfProvisioningParameters/certInfo/country",
                "two-letter",
            )
        },
        // A certInfo field CDF does not read is ignored, as CDF ignored it (unit-tested in
        // `domain::template::cdf`): not a broken request.
        Case {
            cdf: json!({"certificatePem": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----", "certificateStatus": "REVOKED"}),
            culprit: Culprit::Request,
            ..case(
                "without-CA status",
                cdf_template(json!({"registerDeviceCertificateWithoutCA": true}), by_id.clone()),
                "/cdfProvisioningParameters/certificateStatus",
                "ACTIVE or INACTIVE",
            )
        },
        Case {
            cdf: json!({"certificateStatus": "ACTIVE"}),
            culprit: Culprit::Request,
            ..case(
                "without-CA missing PEM",
                cdf_template(json!({"registerDeviceCertificateWithoutCA": true}), by_id),
                "/cdfProvisioningParameters/certificatePem",
                "certificatePem is required",
            )
        },
    ]
}

#[test]
fn every_broken_template_names_its_path_and_reason() {
    let cases = cases();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let result = Template::parse(&case.template.to_string()).and_then(|t| t.plan(&case.parameters, &case.cdf));
        let errors = match result {
            Ok(plan) => {
                failures.push(format!("{}: planned without error: {plan:?}", case.name));
                continue;
            }
            Err(errors) => errors,
        };
        let hit =
            errors.iter().any(|e| e.path == case.path && e.message.contains(case.message) && e.culprit == case.culprit);
        if !hit {
            failures.push(format!(
                "{}: expected {:?} {} ~ {:?}, got {errors:#?}",
                case.name, case.culprit, case.path, case.message
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn the_base_template_plans_every_resource() {
    let plan = Template::parse(&base().to_string()).unwrap().plan(&good_params(), &Value::Null).unwrap();
    let thing = plan.thing.unwrap();
    assert_eq!(thing.thing_name, "dev-1");
    assert_eq!(thing.attributes, BTreeMap::from([("site".to_owned(), "berlin".to_owned())]));
    assert_eq!(thing.thing_groups, ["eu-fleet"]);
    assert_eq!(thing.overrides.attribute_payload, Override::Merge);
    let cert = plan.certificate.unwrap();
    assert_eq!(cert.source, CertificateSource::Csr { csr: CSR.to_owned() });
    assert_eq!(cert.status, InitialStatus::Active);
    assert_eq!(plan.policies[0].policy_name, "device-policy");
}

#[test]
fn cdf_extensions_become_certificate_sources_and_policies() {
    let mut t = cdf_template(
        json!({"createDeviceCertificate": true, "keyAlgorithm": "RSA_2048", "clientIdMustMatchThingName": true,
               "attachAdditionalPolicies": [{"name": "extra", "document": "{\"Statement\": []}"}, {"name": "fleet"}]}),
        json!({"CertificatePem": {"Ref": "CertificatePem"}, "CACertificatePem": {"Ref": "CaCertificatePem"}}),
    );
    t["Parameters"].as_object_mut().unwrap().remove("CSR");
    let cdf = json!({"caId": "ca-1", "certInfo": {"commonName": "dev-1", "country": "DE", "daysExpiry": 90}});
    let plan = Template::parse(&t.to_string())
        .unwrap()
        .plan(&params(&[("ThingName", "dev-1"), ("Extra", "x")]), &cdf)
        .unwrap();
    match plan.certificate.unwrap().source {
        CertificateSource::CaSigned { ca_id, cert_info, key_algorithm } => {
            assert_eq!(ca_id, "ca-1");
            assert_eq!(cert_info.days_expiry, Some(90));
            assert_eq!(key_algorithm, KeyAlgorithm::Rsa2048);
        }
        other => panic!("{other:?}"),
    }
    let names: Vec<_> = plan.policies.iter().map(|p| p.policy_name.as_str()).collect();
    assert_eq!(names[0], "device-policy");
    assert!(names[1].starts_with("extra_") && names[1].len() == "extra_".len() + 12, "{names:?}");
    assert_eq!(names[2..], ["fleet", "clientIdEnforcementPolicy_dev-1"]);
    assert!(plan.policies[3].document.as_deref().unwrap().contains("client/dev-1"));
    assert_eq!(plan.ignored_parameters, ["Extra"]);
}

#[test]
fn a_document_policy_is_named_after_its_hash_so_retries_find_it() {
    let t = broken(&[("/Resources/policy/Properties", json!({"PolicyDocument": "{\"Statement\": []}"}))]);
    let template = Template::parse(&t.to_string()).unwrap();
    let a = template.plan(&good_params(), &Value::Null).unwrap();
    let b = template.plan(&good_params(), &Value::Null).unwrap();
    assert_eq!(a.policies[0].policy_name, b.policies[0].policy_name);
    assert_eq!(a.policies[0].policy_name.len(), 64);
}

#[test]
fn oversized_templates_are_refused() {
    let mut t = base();
    t["Description"] = json!("x".repeat(10_300));
    let errors = Template::parse(&t.to_string()).unwrap_err();
    assert!(errors[0].message.contains("IoT allows 10240"), "{errors:?}");
}

#[test]
fn the_shipped_example_templates_plan_with_their_example_requests() {
    let mut planned = 0;
    for (name, text) in examples::all() {
        let template = Template::parse(&text).unwrap();
        let request = examples::request(&name);
        assert_eq!(request["provisioningTemplateId"], name.as_str());
        let parameters: BTreeMap<String, String> = serde_json::from_value(request["parameters"].clone()).unwrap();
        let cdf = request.get("cdfProvisioningParameters").cloned().unwrap_or(Value::Null);
        template.plan(&parameters, &cdf).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        planned += 1;
    }
    assert!(planned >= 6, "{planned} templates");
}

/// Checked without parameters: what `template validate` (no `--parameters`) reports.
fn static_errors(template: &Value) -> Vec<(String, String)> {
    let template = Template::parse(&template.to_string()).unwrap_or_else(|e| panic!("does not parse: {e:?}"));
    template.check_static().into_iter().map(|e| (e.path, e.message)).collect()
}

#[test]
fn without_parameters_every_error_that_does_not_depend_on_them_is_found() {
    let cases = [
        (
            "Ref to an undeclared parameter",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Ref": "Nope"}))]),
            "/Resources/thing/Properties/ThingName/Ref",
            "not a declared parameter",
        ),
        (
            "Fn::Join with one argument",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Join": ["-"]}))]),
            "/Resources/thing/Properties/ThingName/Fn::Join",
            "takes 2 arguments, got 1",
        ),
        (
            "a certificate with two sources",
            broken(&[("/Resources/certificate/Properties/CertificateId", json!("abc"))]),
            "/Resources/certificate/Properties",
            "exactly one of",
        ),
        (
            "a literal thing name IoT refuses",
            broken(&[("/Resources/thing/Properties/ThingName", json!("bad name"))]),
            "/Resources/thing/Properties/ThingName",
            "bad name",
        ),
        (
            "Fn::Select out of range on a literal list",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::Select": [3, ["a", "b"]]}))]),
            "/Resources/thing/Properties/ThingName/Fn::Select/0",
            "index 3 is out of range for a list of 2",
        ),
        (
            "Fn::FindInMap without Mappings",
            broken(&[("/Mappings", Value::Null)]),
            "/Resources/thing/Properties/ThingGroups/0/Fn::FindInMap/0",
            "the template has no Mappings",
        ),
        (
            "an unknown function",
            broken(&[("/Resources/thing/Properties/ThingName", json!({"Fn::If": ["c", "a", "b"]}))]),
            "/Resources/thing/Properties/ThingName/Fn::If",
            "unknown function",
        ),
        (
            "a literal Status IoT refuses",
            broken(&[("/Resources/certificate/Properties/Status", json!("REVOKED"))]),
            "/Resources/certificate/Properties/Status",
            "ACTIVE or INACTIVE",
        ),
        (
            "a literal attribute value IoT refuses",
            broken(&[("/Resources/thing/Properties/AttributePayload", json!({"site": "a b"}))]),
            "/Resources/thing/Properties/AttributePayload/site",
            "AWS IoT's pattern",
        ),
        (
            "a literal policy document that is not JSON",
            broken(&[("/Resources/policy/Properties", json!({"PolicyDocument": "{nope"}))]),
            "/Resources/policy/Properties/PolicyDocument",
            "not valid JSON",
        ),
        (
            "Fn::Split with an empty delimiter",
            broken(&[("/Resources/thing/Properties/ThingGroups", json!({"Fn::Split": ["", {"Ref": "Site"}]}))]),
            "/Resources/thing/Properties/ThingGroups/Fn::Split/0",
            "must not be empty",
        ),
    ];
    let mut failures = Vec::new();
    for (name, template, path, message) in cases {
        let errors = static_errors(&template);
        if !errors.iter().any(|(p, m)| p == path && m.contains(message)) {
            failures.push(format!("{name}: expected {path} ~ {message:?}, got {errors:#?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn what_depends_on_a_parameter_value_is_left_for_the_request() {
    // Every expression here is fine for some values and wrong for others.
    let template = broken(&[
        ("/Resources/thing/Properties/ThingName", json!({"Fn::Join": ["-", [{"Ref": "Site"}, {"Ref": "ThingName"}]]})),
        (
            "/Resources/thing/Properties/ThingGroups",
            json!({"Fn::Split": [",", {"Fn::Select": [{"Ref": "Site"}, {"Fn::Split": [";", {"Ref": "ThingName"}]}]}]}),
        ),
        (
            "/Resources/thing/Properties/AttributePayload",
            json!({"site": {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Group"]}}),
        ),
        ("/Resources/certificate/Properties/Status", json!({"Ref": "Site"})),
    ]);
    assert_eq!(static_errors(&template), Vec::<(String, String)>::new());
    assert_eq!(static_errors(&base()), Vec::<(String, String)>::new());
}

#[test]
fn the_shipped_example_templates_have_no_static_errors() {
    for (name, text) in examples::all() {
        let template: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(static_errors(&template), Vec::<(String, String)>::new(), "{name}");
    }
}

#[test]
fn template_errors_of_the_corpus_are_found_without_parameters_unless_they_depend_on_them() {
    // Template errors that appear only with some parameter values.
    let value_dependent: [&str; 0] = [];
    let mut missed = Vec::new();
    for case in cases().into_iter().filter(|c| c.culprit == Culprit::Template) {
        let Ok(template) = Template::parse(&case.template.to_string()) else { continue };
        let found = template.check_static().iter().any(|e| e.path == case.path && e.message.contains(case.message));
        if !found && !value_dependent.contains(&case.name) {
            missed.push(case.name);
        }
    }
    assert!(missed.is_empty(), "found only with parameters: {missed:?}");
}
