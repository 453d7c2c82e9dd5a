//! Templates and parameters aimed at the policies a template grants: every value that would
//! widen a policy (JSON pasted into a text document, wildcards, policy variables, a chosen
//! `PolicyName`) is refused at planning, before any AWS call, with the path at fault. One row
//! per attempt, and a few legitimate templates that must still plan.

use std::collections::BTreeMap;

use cdf_provisioning::domain::template::{Culprit, Template};
use serde_json::{Value, json};

const TOPIC: &str = "arn:aws:iot:eu-west-1:123456789012:topic";
const INJECTION: &str = r#"x"},{"Effect":"Allow","Action":"iot:*","Resource":"*"},{"Effect":"Allow","Action":"iot:Publish","Resource":"arn:aws:iot:eu-west-1:123456789012:topic/z"#;

/// A template with a thing and one policy made from `document`, with `extra` parameters declared.
fn with_document(document: Value, extra: Value) -> Value {
    let mut parameters = json!({"ThingName": {"Type": "String"}, "Site": {"Type": "String"}});
    for (k, v) in extra.as_object().unwrap() {
        parameters[k] = v.clone();
    }
    json!({
        "Parameters": parameters,
        "Mappings": {"Sites": {"berlin": {"Prefix": "eu"}}},
        "Resources": {
            "thing": {"Type": "AWS::IoT::Thing", "Properties": {"ThingName": {"Ref": "ThingName"}}},
            "policy": {"Type": "AWS::IoT::Policy", "Properties": {"PolicyDocument": document}}
        }
    })
}

/// A template attaching the existing policy named by `name`.
fn with_name(name: Value, extra: Value) -> Value {
    let mut t = with_document(Value::Null, extra);
    t["Resources"]["policy"]["Properties"] = json!({"PolicyName": name});
    t
}

/// `iot:Publish` on `topic/sites/${Site}/${ThingName}`, as JSON text through `Fn::Sub`.
fn text_form() -> Value {
    with_document(
        json!({"Fn::Sub": format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"iot:Publish","Resource":"{TOPIC}/sites/${{Site}}/${{ThingName}}"}}]}}"#
        )}),
        json!({}),
    )
}

/// The same grant as an object.
fn object_form(resource: Value) -> Value {
    object_form_with(resource, json!({}))
}

fn object_form_with(resource: Value, extra: Value) -> Value {
    with_document(
        json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "iot:Publish", "Resource": resource}]}),
        extra,
    )
}

fn sub_resource() -> Value {
    json!({"Fn::Sub": format!("{TOPIC}/sites/${{Site}}/${{ThingName}}")})
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn site(value: &str) -> BTreeMap<String, String> {
    params(&[("ThingName", "dev-1"), ("Site", value)])
}

struct Case {
    name: &'static str,
    template: Value,
    parameters: BTreeMap<String, String>,
    culprit: Culprit,
    path: &'static str,
}

fn request(name: &'static str, template: Value, parameters: BTreeMap<String, String>, path: &'static str) -> Case {
    Case { name, template, parameters, culprit: Culprit::Request, path }
}

fn template(name: &'static str, template: Value, parameters: BTreeMap<String, String>, path: &'static str) -> Case {
    Case { name, template, parameters, culprit: Culprit::Template, path }
}

const DOC: &str = "/Resources/policy/Properties/PolicyDocument";
const NAME: &str = "/Resources/policy/Properties/PolicyName";

fn hostile() -> Vec<Case> {
    let site_pattern = |pattern: &str| json!({"Site": {"Type": "String", "AllowedPattern": pattern}});
    vec![
        request("statements injected into a text document", text_form(), site(INJECTION), "/parameters/Site"),
        request(
            "statements injected into an object document",
            object_form(sub_resource()),
            site(INJECTION),
            "/parameters/Site",
        ),
        request("a wildcard in a text document", text_form(), site("*"), "/parameters/Site"),
        request("a wildcard in an object document", object_form(sub_resource()), site("*"), "/parameters/Site"),
        request("a trailing wildcard", object_form(sub_resource()), site("berlin*"), "/parameters/Site"),
        request("an MQTT multi-level wildcard", object_form(sub_resource()), site("#"), "/parameters/Site"),
        request("an MQTT single-level wildcard", object_form(sub_resource()), site("+"), "/parameters/Site"),
        request("a single-character wildcard", object_form(sub_resource()), site("berli?"), "/parameters/Site"),
        request("a slash climbing the topic tree", object_form(sub_resource()), site("a/b"), "/parameters/Site"),
        request("a lone quote in a text document", text_form(), site("x\""), "/parameters/Site"),
        request("a backslash escaping the closing quote", text_form(), site("x\\"), "/parameters/Site"),
        request("a unicode escape for a quote", text_form(), site("x\\u0022"), "/parameters/Site"),
        request("a policy variable", object_form(sub_resource()), site("${iot:ClientId}"), "/parameters/Site"),
        request("a space", object_form(sub_resource()), site("a b"), "/parameters/Site"),
        request("a newline", text_form(), site("a\nb"), "/parameters/Site"),
        request("a non-ASCII look-alike", object_form(sub_resource()), site("berlſn"), "/parameters/Site"),
        request("an extra resource in a text list", text_form(), site(r#"x","*"#), "/parameters/Site"),
        request(
            "a wildcard through Fn::Join",
            object_form(json!({"Fn::Join": ["/", [TOPIC, {"Ref": "Site"}]]})),
            site("*"),
            "/parameters/Site",
        ),
        request("the whole resource from a Ref", object_form(json!([{"Ref": "Site"}])), site("*"), "/parameters/Site"),
        request(
            "a wildcard through Fn::Sub variables",
            object_form(json!({"Fn::Sub": [format!("{TOPIC}/${{S}}"), {"S": {"Ref": "Site"}}]})),
            site("*"),
            "/parameters/Site",
        ),
        request(
            "a wildcard through Fn::Split and Fn::Select",
            object_form(json!({"Fn::Select": [0, {"Fn::Split": [",", {"Ref": "Site"}]}]})),
            site("*,x"),
            "/parameters/Site",
        ),
        request(
            "a wildcard in a condition value",
            with_document(
                json!({"Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
                    "Condition": {"StringLike": {"iot:ClientId": {"Ref": "Site"}}}}]}),
                json!({}),
            ),
            site("*"),
            "/parameters/Site",
        ),
        request(
            "a Version breaking out of a text document",
            with_document(
                json!({"Fn::Sub": r#"{"Version":"${Site}","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"x"}]}"#}),
                json!({}),
            ),
            site(r#"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}],"x":""#),
            "/parameters/Site",
        ),
        template(
            "a whole document from a parameter",
            with_document(json!({"Ref": "Site"}), json!({})),
            site(r#"{"Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#),
            "/Resources/policy/Properties/PolicyDocument/Ref",
        ),
        request(
            "a whole document through Fn::Sub",
            with_document(json!({"Fn::Sub": "${Site}"}), json!({})),
            site(r#"{"Statement":[{"Effect":"Allow","Action":"iot:*","Resource":"*"}]}"#),
            "/parameters/Site",
        ),
        request(
            "an escaped wildcard through an AllowedPattern admitting backslashes",
            with_document(
                text_form()["Resources"]["policy"]["Properties"]["PolicyDocument"].clone(),
                site_pattern("[a-z0-9\\\\]+"),
            ),
            site("x\\u002a"),
            "/parameters/Site",
        ),
        request(
            "a wildcard thing name in a text document",
            text_form(),
            params(&[("ThingName", "*"), ("Site", "berlin")]),
            "/parameters/ThingName",
        ),
        request(
            "a second parameter hostile, the first fine",
            object_form_with(
                json!({"Fn::Sub": format!("{TOPIC}/${{Site}}/${{Env}}")}),
                json!({"Env": {"Type": "String"}}),
            ),
            params(&[("ThingName", "dev-1"), ("Site", "berlin"), ("Env", "#")]),
            "/parameters/Env",
        ),
        request(
            "a value outside its AllowedPattern",
            object_form_with(sub_resource(), site_pattern("[a-z]+(/[a-z]+)*")),
            site("*"),
            "/parameters/Site",
        ),
        request(
            "statements injected through a permissive AllowedPattern",
            with_document(
                text_form()["Resources"]["policy"]["Properties"]["PolicyDocument"].clone(),
                site_pattern(".*"),
            ),
            site(INJECTION),
            "/parameters/Site",
        ),
        request(
            "a statement appended through an unquoted paste",
            with_document(
                json!({"Fn::Sub": r#"{"Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"x"}${Site}]}"#}),
                site_pattern("[a-z,{}]*"),
            ),
            site(",{}"),
            "/parameters/Site",
        ),
        request(
            "a value outside its AllowedValues",
            object_form_with(sub_resource(), json!({"Site": {"Type": "String", "AllowedValues": ["berlin", "paris"]}})),
            site("*"),
            "/parameters/Site",
        ),
        request(
            "a long hostile value",
            object_form(sub_resource()),
            site(&format!("{}*", "a".repeat(1_000))),
            "/parameters/Site",
        ),
        request(
            "an existing policy outside AllowedValues",
            with_name(
                json!({"Ref": "Policy"}),
                json!({"Policy": {"Type": "String", "AllowedValues": ["device-policy"]}}),
            ),
            params(&[("ThingName", "dev-1"), ("Site", "x"), ("Policy", "admin-policy")]),
            "/parameters/Policy",
        ),
        template(
            "a PolicyName from a parameter",
            with_name(json!({"Ref": "Policy"}), json!({"Policy": {"Type": "String"}})),
            params(&[("ThingName", "dev-1"), ("Site", "x"), ("Policy", "admin-policy")]),
            NAME,
        ),
        template(
            "a PolicyName made with Fn::Sub",
            with_name(json!({"Fn::Sub": "${Site}-policy"}), json!({})),
            site("admin"),
            NAME,
        ),
        template(
            "a PolicyName made with Fn::Join and the thing name",
            with_name(json!({"Fn::Join": ["-", ["policy", {"Ref": "ThingName"}]]}), json!({})),
            site("x"),
            NAME,
        ),
        template(
            "an action from a parameter",
            with_document(
                json!({"Statement": [{"Effect": "Allow", "Action": {"Ref": "Site"}, "Resource": "x"}]}),
                json!({}),
            ),
            site("iot:Connect"),
            DOC,
        ),
        template(
            "an effect from a parameter",
            with_document(
                json!({"Statement": [{"Effect": {"Fn::Sub": "${Site}"}, "Action": "iot:Connect", "Resource": "x"}]}),
                json!({}),
            ),
            site("Allow"),
            DOC,
        ),
        template(
            "an action pasted into a text document",
            with_document(
                json!({"Fn::Sub": r#"{"Statement":[{"Effect":"Allow","Action":"iot:${Site}","Resource":"x"}]}"#}),
                json!({}),
            ),
            site("Publish"),
            DOC,
        ),
        template(
            "a statement from a parameter",
            with_document(json!({"Statement": {"Ref": "Site"}}), json!({})),
            site("x"),
            DOC,
        ),
    ]
}

#[test]
fn every_attempt_to_widen_a_policy_is_refused_at_planning_with_its_path() {
    let cases = hostile();
    assert!(cases.len() >= 30, "{} cases", cases.len());
    for case in cases {
        let template = Template::parse(&case.template.to_string())
            .unwrap_or_else(|e| panic!("{}: the template does not parse: {e:?}", case.name));
        let errors = match template.plan(&case.parameters, &Value::Null) {
            Ok(plan) => panic!("{}: planned {:?}", case.name, plan.policies),
            Err(errors) => errors,
        };
        assert_eq!(errors[0].path, case.path, "{}: {errors:?}", case.name);
        assert_eq!(errors[0].culprit, case.culprit, "{}: {errors:?}", case.name);
        for e in &errors {
            assert!(e.message.chars().count() < 1_000, "{}: unbounded message {}", case.name, e.message);
        }
    }
}

#[test]
fn templates_that_would_allow_injection_are_reported_without_parameters() {
    for case in hostile().into_iter().filter(|c| c.culprit == Culprit::Template) {
        let template = Template::parse(&case.template.to_string()).unwrap();
        let errors = template.check_static();
        assert!(errors.iter().any(|e| e.path == case.path), "{}: {errors:?}", case.name);
    }
}

#[test]
fn legitimate_policies_still_plan() {
    let allow_slash = json!({"Site": {"Type": "String", "AllowedPattern": "[a-z]+(/[a-z]+)*"}});
    let cases: Vec<(&str, Value, BTreeMap<String, String>, &str)> = vec![
        ("a thing-scoped topic in a text document", text_form(), site("berlin"), "topic/sites/berlin/dev-1"),
        (
            "a thing-scoped topic in an object document",
            object_form(sub_resource()),
            site("berlin"),
            "sites/berlin/dev-1",
        ),
        (
            "a slash its AllowedPattern permits",
            object_form_with(sub_resource(), allow_slash.clone()),
            site("eu/berlin"),
            "sites/eu/berlin/dev-1",
        ),
        (
            "a slash its AllowedPattern permits, in a text document",
            with_document(text_form()["Resources"]["policy"]["Properties"]["PolicyDocument"].clone(), allow_slash),
            site("eu/berlin"),
            "sites/eu/berlin/dev-1",
        ),
        (
            "a policy variable written in the template",
            object_form(json!({"Fn::Sub": format!("{TOPIC}/${{Site}}/${{!iot:Connection.Thing.ThingName}}")})),
            site("berlin"),
            "berlin/${iot:Connection.Thing.ThingName}",
        ),
        (
            "a mapping chosen by a parameter",
            object_form(json!({"Fn::Join": ["/", [TOPIC, {"Fn::FindInMap": ["Sites", {"Ref": "Site"}, "Prefix"]}]]})),
            site("berlin"),
            "topic/eu",
        ),
        (
            "a condition on the thing name",
            with_document(
                json!({"Statement": [{"Effect": "Allow", "Action": "iot:Connect", "Resource": "*",
                    "Condition": {"StringEquals": {"iot:ClientId": {"Ref": "ThingName"}}}}]}),
                json!({}),
            ),
            site("x"),
            "dev-1",
        ),
    ];
    for (name, t, parameters, expected) in cases {
        let template = Template::parse(&t.to_string()).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert!(template.check_static().is_empty(), "{name}: {:?}", template.check_static());
        let plan = template.plan(&parameters, &Value::Null).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        let document = plan.policies[0].document.as_deref().unwrap();
        assert!(document.contains(expected), "{name}: {document}");
    }

    let named = with_name(
        json!({"Ref": "Policy"}),
        json!({"Policy": {"Type": "String", "AllowedValues": ["device-policy", "gateway-policy"]}}),
    );
    let template = Template::parse(&named.to_string()).unwrap();
    assert!(template.check_static().is_empty(), "{:?}", template.check_static());
    let plan =
        template.plan(&params(&[("ThingName", "dev-1"), ("Site", "x"), ("Policy", "gateway-policy")]), &Value::Null);
    assert_eq!(plan.unwrap().policies[0].policy_name, "gateway-policy");
    assert!(!template.body_text().contains("AllowedValues"), "IoT is not handed what it does not know");
}

/// The text-form template with a certificate IoT issues, as the service stores it.
fn stored_template() -> String {
    let mut t = text_form();
    t["Resources"]["certificate"] =
        json!({"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "CertificateId"}}});
    t["CDF"] = json!({"createDeviceAWSCertificate": true});
    t.to_string()
}

fn command(body: Value) -> cdf_provisioning::domain::CommandEnvelope {
    crate::support::envelope(body)
}

#[tokio::test]
async fn an_injected_provisioning_request_leaves_nothing_in_iot() {
    let f = crate::support::Fixture::new();
    f.templates.put("sites", &stored_template());
    for (key, value) in [("text", INJECTION), ("wildcard", "*")] {
        let request = json!({"provisioningTemplateId": "sites", "parameters": {"ThingName": "dev-1", "Site": value}});
        let envelope =
            command(json!({"schemaVersion": 1, "type": "provisionThing", "idempotencyKey": key, "payload": request}));
        f.app.handle(&envelope, "t").await;
        let error = f.record(key).error.unwrap();
        assert_eq!(error.path.as_deref(), Some("/payload/parameters/Site"), "{key}: {error:?}");
    }
    assert!(f.registry.faults.calls().is_empty(), "{:?}", f.registry.faults.calls());
    assert!(!f.registry.has_thing("dev-1"));
}

#[tokio::test]
async fn an_injected_bulk_row_is_refused_at_acceptance_and_never_reaches_iot() {
    let f = crate::support::Fixture::new();
    f.templates.put("sites", &stored_template());
    let rows = json!([
        {"ThingName": "dev-0", "Site": "berlin"},
        {"ThingName": "dev-evil", "Site": INJECTION},
        {"ThingName": "dev-star", "Site": "*"}
    ]);
    let envelope = command(json!({"schemaVersion": 1, "type": "bulkProvisionThings", "idempotencyKey": "b",
        "payload": {"provisioningTemplateId": "sites", "parameters": rows}}));
    f.app.handle(&envelope, "t").await;
    assert!(f.registry.faults.calls().is_empty(), "nothing is made while a task is accepted");
    let task = cdf_provisioning::domain::bulk::TaskId::for_key(&cdf_provisioning::domain::IdempotencyKey::new("b"));
    let failed =
        f.app.bulk_rows(&task, None, 10, Some(cdf_provisioning::domain::bulk::RowOutcome::Failed)).await.unwrap();
    let paths: Vec<_> =
        failed.rows.iter().map(|r| r.error.as_ref().unwrap().path.as_deref().unwrap().to_owned()).collect();
    assert_eq!(paths, ["/parameters/1/Site", "/parameters/2/Site"]);
}

#[test]
fn parameter_declarations_are_checked_and_a_templates_own_default_is_trusted() {
    let declared = |declaration: Value| object_form_with(sub_resource(), json!({"Site": declaration}));
    for (name, declaration, path) in [
        (
            "an invalid AllowedPattern",
            json!({"Type": "String", "AllowedPattern": "("}),
            "/Parameters/Site/AllowedPattern",
        ),
        (
            "an AllowedPattern not a string",
            json!({"Type": "String", "AllowedPattern": 1}),
            "/Parameters/Site/AllowedPattern",
        ),
        ("empty AllowedValues", json!({"Type": "String", "AllowedValues": []}), "/Parameters/Site/AllowedValues"),
        (
            "AllowedValues not strings",
            json!({"Type": "String", "AllowedValues": [1]}),
            "/Parameters/Site/AllowedValues",
        ),
        (
            "a Default outside its own AllowedValues",
            json!({"Type": "String", "Default": "x", "AllowedValues": ["a"]}),
            "/Parameters/Site/Default",
        ),
    ] {
        let errors = Template::parse(&declared(declaration).to_string()).unwrap_err();
        assert_eq!(errors[0].path, path, "{name}: {errors:?}");
    }

    // The template's own Default is its author's choice, not the caller's input.
    let template =
        Template::parse(&declared(json!({"Type": "String", "Default": "sensors/room"})).to_string()).unwrap();
    let plan = template.plan(&params(&[("ThingName", "dev-1")]), &Value::Null).unwrap();
    assert!(plan.policies[0].document.as_deref().unwrap().contains("sites/sensors/room/dev-1"));
    let errors = template.plan(&site("sensors/#"), &Value::Null).unwrap_err();
    assert_eq!(errors[0].path, "/parameters/Site");
}

/// A stored template whose policy allows `action` on `resource`, made for a thing.
fn granting(action: &str, resource: &str) -> String {
    let mut t = object_form(json!(resource));
    t["Resources"]["policy"]["Properties"]["PolicyDocument"]["Statement"][0]["Action"] = json!(action);
    t["Resources"]["certificate"] =
        json!({"Type": "AWS::IoT::Certificate", "Properties": {"CertificateId": {"Ref": "CertificateId"}}});
    t["CDF"] = json!({"createDeviceAWSCertificate": true});
    t.to_string()
}

#[tokio::test]
async fn the_deployments_allow_list_refuses_policies_granting_more_before_any_aws_call() {
    use cdf_provisioning::domain::template::policy_allow::PolicyAllowList;
    let f = crate::support::Fixture::with_settings(|s| {
        s.provision.policy_allow = Some(PolicyAllowList::new(["iot:Connect", "iot:Publish"], false));
    });
    let topic = format!("{TOPIC}/sites/berlin");
    for (id, action, resource) in [
        ("everything", "iot:*", "*"),
        ("any-topic", "iot:Publish", "*"),
        ("shadow", "iot:UpdateThingShadow", topic.as_str()),
    ] {
        f.templates.put(id, &granting(action, resource));
        let request = json!({"provisioningTemplateId": id, "parameters": {"ThingName": "dev-1", "Site": "berlin"}});
        let envelope =
            command(json!({"schemaVersion": 1, "type": "provisionThing", "idempotencyKey": id, "payload": request}));
        f.app.handle(&envelope, "t").await;
        let error = f.record(id).error.unwrap();
        assert_eq!(error.code, cdf_provisioning::domain::ErrorCode::ValidationFailed, "{id}: {error:?}");
        assert_eq!(error.path.as_deref(), Some("template:/Resources/policy/Properties/PolicyDocument"), "{id}");
    }
    assert!(f.registry.faults.calls().is_empty(), "{:?}", f.registry.faults.calls());

    // A listed action on a named resource is provisioned.
    f.templates.put("publish", &granting("iot:Publish", &topic));
    let request = json!({"provisioningTemplateId": "publish", "parameters": {"ThingName": "dev-2", "Site": "berlin"}});
    let envelope =
        command(json!({"schemaVersion": 1, "type": "provisionThing", "idempotencyKey": "publish", "payload": request}));
    f.app.handle(&envelope, "t").await;
    let record = f.record("publish");
    assert_eq!(record.status, cdf_provisioning::domain::CommandStatus::Succeeded, "{:?}", record.error);
}
