//! The deployment's allow-list of what a policy made by provisioning may grant
//! (`CDF_POLICY_ALLOWED_ACTIONS`): a template, however it was uploaded, cannot give devices
//! rights the operator did not list. Off unless configured, as CDF had no such list.
//!
//! With the list on, every `Allow` statement of a policy document the service creates may name
//! only listed actions; a wildcard action (`iot:*`, `*`, `iot:Pub*`) only when the list names
//! that very wildcard; `NotAction` and `NotResource` (which grant everything they do not name)
//! never; and `Resource: "*"` only when the operator allows any resource too.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::domain::error::bounded;

/// What policies made by provisioning may grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyAllowList {
    /// Actions an `Allow` statement may name, lowercased (IAM action names are case-insensitive).
    actions: BTreeSet<String>,
    /// Whether an `Allow` statement may name `Resource: "*"`.
    any_resource: bool,
}

impl PolicyAllowList {
    /// The list of `actions` (`iot:Connect`, ...), and whether any resource (`*`) may be granted.
    pub fn new<'a>(actions: impl IntoIterator<Item = &'a str>, any_resource: bool) -> Self {
        Self { actions: actions.into_iter().map(|a| a.trim().to_ascii_lowercase()).collect(), any_resource }
    }

    /// Checks a policy document (JSON text); the error says which statement grants what.
    pub fn check(&self, document: &str) -> Result<(), String> {
        let document: Value =
            serde_json::from_str(document).map_err(|e| format!("the policy document is not JSON: {e}"))?;
        let statements = match document.get("Statement") {
            Some(Value::Array(statements)) => statements.iter().collect::<Vec<_>>(),
            Some(statement @ Value::Object(_)) => vec![statement],
            _ => return Err("the policy document has no Statement".to_owned()),
        };
        for (i, statement) in statements.into_iter().enumerate() {
            if statement.get("Effect").and_then(Value::as_str) != Some("Allow") {
                continue;
            }
            for field in ["NotAction", "NotResource"] {
                if statement.get(field).is_some() {
                    return Err(format!(
                        "statement {i} allows with {field}, which grants everything it does not name; this deployment allows only the actions in CDF_POLICY_ALLOWED_ACTIONS"
                    ));
                }
            }
            for action in texts(statement.get("Action")) {
                if !self.actions.contains(&action.to_ascii_lowercase()) {
                    return Err(format!(
                        "statement {i} allows action {:?}, which this deployment does not allow (CDF_POLICY_ALLOWED_ACTIONS)",
                        bounded(action)
                    ));
                }
            }
            if !self.any_resource && texts(statement.get("Resource")).any(|r| r == "*") {
                return Err(format!(
                    "statement {i} allows on every resource (\"*\"), which this deployment does not allow (CDF_POLICY_ALLOW_ANY_RESOURCE)"
                ));
            }
        }
        Ok(())
    }
}

/// A string, or each string of an array.
fn texts(value: Option<&Value>) -> impl Iterator<Item = &str> {
    let all: Vec<&str> = match value {
        Some(Value::String(text)) => vec![text.as_str()],
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    all.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list() -> PolicyAllowList {
        PolicyAllowList::new(["iot:Connect", "iot:Publish", "iot:Subscribe", "iot:Receive"], false)
    }

    fn doc(statement: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#)
    }

    #[test]
    fn listed_actions_on_named_resources_pass() {
        let ok = doc(
            r#"{"Effect":"Allow","Action":["iot:Publish","IOT:receive"],"Resource":"arn:aws:iot:eu-west-1:1:topic/t"}"#,
        );
        assert_eq!(list().check(&ok), Ok(()));
        // What is denied is never widened by a deny.
        let deny = doc(r#"{"Effect":"Deny","Action":"iot:*","Resource":"*"}"#);
        assert_eq!(list().check(&deny), Ok(()));
    }

    #[test]
    fn wildcards_unlisted_actions_and_not_forms_are_refused() {
        for (statement, says) in [
            (r#"{"Effect":"Allow","Action":"iot:*","Resource":"arn:x"}"#, "iot:*"),
            (r#"{"Effect":"Allow","Action":"*","Resource":"arn:x"}"#, "\"*\""),
            (r#"{"Effect":"Allow","Action":["iot:Publish","iot:Pub*"],"Resource":"arn:x"}"#, "iot:Pub*"),
            (r#"{"Effect":"Allow","Action":"iot:DeleteThing","Resource":"arn:x"}"#, "iot:DeleteThing"),
            (r#"{"Effect":"Allow","NotAction":"iot:Connect","Resource":"arn:x"}"#, "NotAction"),
            (r#"{"Effect":"Allow","Action":"iot:Connect","NotResource":"arn:x"}"#, "NotResource"),
            (r#"{"Effect":"Allow","Action":"iot:Connect","Resource":["arn:x","*"]}"#, "every resource"),
        ] {
            let refused = list().check(&doc(statement)).unwrap_err();
            assert!(refused.contains(says), "{statement}: {refused}");
        }
    }

    #[test]
    fn a_listed_wildcard_and_any_resource_pass_when_the_operator_says_so() {
        let open = PolicyAllowList::new(["iot:*"], true);
        assert_eq!(open.check(&doc(r#"{"Effect":"Allow","Action":"iot:*","Resource":"*"}"#)), Ok(()));
        let single = r#"{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}}"#;
        assert!(list().check(single).is_err(), "a single statement object is checked too");
        assert!(list().check("not json").is_err());
    }
}
