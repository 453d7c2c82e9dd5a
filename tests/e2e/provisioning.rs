//! `provisionThing` through SQS with every shipped example template: the devices in IoT, their
//! certificates, policies and groups, and the generated keys in S3 only.

use aws_config::BehaviorVersion;
use cdf_provisioning::domain::record::CommandStatus;
use serde_json::json;

use crate::stack::{Stack, command};
use crate::support::{examples, results};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_example_template_provisions_through_sqs() {
    let s = Stack::deploy().await;
    let ca_id = s.examples().await;
    let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
    let s3 = s.s3(&config);
    let names = examples::NAMES;
    let (stop, worker) = s.start_worker().await;
    for name in names {
        let mut request = examples::request(name);
        // Thing names unique to this stack; the CA registered above.
        let thing = s.thing(name.replace('_', "-").as_str());
        request["parameters"]["ThingName"] = json!(thing);
        if name == "ca-signed" {
            request["cdfProvisioningParameters"]["caId"] = json!(ca_id);
            request["cdfProvisioningParameters"]["certInfo"]["commonName"] = json!(thing);
        }
        if name != "aws-issued" && name != "ca-signed" && name != "add_thing_to_group" {
            let key = cdf_provisioning::crypto::generate_key_and_csr(
                cdf_provisioning::domain::template::plan::KeyAlgorithm::EcdsaP256,
                &Default::default(),
                &thing,
            )
            .unwrap();
            request["parameters"]["CSR"] = json!(key.csr_pem);
        }
        s.send(&command(&format!("prov-{name}"), "provisionThing", request)).await;
    }
    let mut records = Vec::new();
    for name in names {
        records.push((name, s.wait_for_outcome(&format!("prov-{name}")).await));
    }
    stop.cancel();
    worker.await.unwrap();

    for (name, record) in &records {
        assert_eq!(record.status, CommandStatus::Succeeded, "{name}: {:?}", record.error);
        let result = results::provisioned(record);
        let thing = result.thing_name.as_deref().unwrap();
        assert_eq!(result.resource_arns.thing.as_deref().unwrap().rsplit('/').next(), Some(thing), "{name}");
        let groups = s.iot.list_thing_groups_for_thing().thing_name(thing).send().await.unwrap();
        let groups: Vec<_> = groups.thing_groups().iter().filter_map(|g| g.group_name()).collect();
        let principals = s.iot.list_thing_principals().thing_name(thing).send().await.unwrap().principals().to_vec();
        if *name == "add_thing_to_group" {
            assert!(principals.is_empty());
            assert_eq!(groups, ["cdf-example-eu"]);
            continue;
        }
        assert_eq!(principals.len(), 1, "{name}: exactly one certificate");
        let id = principals[0].rsplit('/').next().unwrap();
        let cert = s.iot.describe_certificate().certificate_id(id).send().await.unwrap();
        let description = cert.certificate_description().unwrap();
        assert_eq!(description.status().unwrap().as_str(), "ACTIVE", "{name}");
        let policies = s.iot.list_attached_policies().target(&principals[0]).send().await.unwrap();
        let policies: Vec<_> = policies.policies().iter().filter_map(|p| p.policy_name()).collect();
        match *name {
            "csr" => assert_eq!(policies.len(), 1, "{name}: the document policy"),
            "additional-policies" => {
                assert!(policies.contains(&"cdf-example-device"), "{policies:?}");
                assert!(policies.iter().any(|p| p.starts_with("cdf-example-telemetry_")), "{policies:?}");
                assert!(policies.contains(&format!("clientIdEnforcementPolicy_{thing}").as_str()), "{policies:?}");
            }
            _ => assert!(policies.contains(&"cdf-example-device"), "{name}: {policies:?}"),
        }
        if *name == "group-and-type" {
            let described = s.iot.describe_thing().thing_name(thing).send().await.unwrap();
            assert_eq!(described.thing_type_name(), Some("cdf-example-thermometer"));
            let attributes = described.attributes().unwrap();
            assert_eq!(attributes["region"], "us-south");
            assert_eq!(attributes["label"], "thermometer@austin");
            assert_eq!(groups, ["cdf-example-us"]);
        }
        let pem = description.certificate_pem().unwrap();
        let der: Vec<u8> = {
            use base64::Engine;
            let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD.decode(body).unwrap()
        };
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        let expected =
            if *name == "ca-signed" { format!("C=DE, O=Example Corp, CN={thing}") } else { format!("CN={thing}") };
        assert_eq!(parsed.subject().to_string(), expected, "{name}: certificate subject");
        let generated = matches!(*name, "aws-issued" | "ca-signed");
        assert_eq!(result.private_key_secret.is_some(), generated, "{name}: {result:?}");
        if generated {
            let uri = result.private_key_secret.as_deref().unwrap();
            let key = uri.strip_prefix(&format!("s3://{}/", s.output("BucketName"))).unwrap();
            let object = s3.get_object().bucket(s.output("BucketName")).key(key).send().await.unwrap();
            // Under the deployment's own KMS key, as the stack sets it up.
            assert_eq!(object.server_side_encryption().map(|e| e.as_str()), Some("aws:kms"));
            assert_eq!(object.ssekms_key_id(), Some(s.output("SecretsKeyArn")));
            // The key's name says which attempt made it (one name per attempt).
            assert!(key.ends_with("/1.pem"), "{key}");
            let text = String::from_utf8(object.body.collect().await.unwrap().into_bytes().to_vec()).unwrap();
            assert!(text.contains("PRIVATE KEY"), "{name}: the secret holds the key");
        }
    }
    let events = s.events(names.len()).await;
    assert_eq!(events.iter().filter(|e| e["type"] == "thing.provisioned").count(), names.len(), "{events:?}");
    assert!(!serde_json::to_string(&events).unwrap().contains("PRIVATE KEY"), "no key in any event");
}
