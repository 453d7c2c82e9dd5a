//! The facade's contract, `schemas/openapi.yaml` (OpenAPI 3.1): written in YAML for the people
//! who read and review it, read once at first use, and served as JSON at `/openapi.json`.

use std::sync::LazyLock;

use serde_json::{Map, Number, Value};
use yaml_rust2::{Yaml, YamlLoader};

/// The contract as written.
pub const SOURCE: &str = include_str!("../../schemas/openapi.yaml");

static JSON: LazyLock<Result<String, String>> = LazyLock::new(|| document().map(|doc| doc.to_string()));

/// The contract as JSON text (an error if the YAML does not read, which a unit test rules out).
pub fn json() -> Result<&'static str, &'static str> {
    JSON.as_ref().map(String::as_str).map_err(String::as_str)
}

/// The contract as a JSON value.
pub fn document() -> Result<Value, String> {
    let docs = YamlLoader::load_from_str(SOURCE).map_err(|e| format!("schemas/openapi.yaml: {e}"))?;
    match docs.as_slice() {
        [doc] => to_json(doc, "").map_err(|e| format!("schemas/openapi.yaml: {e}")),
        other => Err(format!("schemas/openapi.yaml holds {} documents, not one", other.len())),
    }
}

/// YAML to JSON; `at` is the JSON pointer of `node`, for errors.
fn to_json(node: &Yaml, at: &str) -> Result<Value, String> {
    Ok(match node {
        Yaml::Null => Value::Null,
        Yaml::Boolean(b) => Value::Bool(*b),
        Yaml::Integer(i) => Value::from(*i),
        Yaml::Real(text) => text
            .parse::<f64>()
            .ok()
            .and_then(Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("{at}: {text:?} is not a JSON number"))?,
        Yaml::String(s) => Value::String(s.clone()),
        Yaml::Array(items) => Value::Array(
            items.iter().enumerate().map(|(i, item)| to_json(item, &format!("{at}/{i}"))).collect::<Result<_, _>>()?,
        ),
        Yaml::Hash(entries) => {
            let mut object = Map::new();
            for (key, value) in entries {
                // JSON keys are text: a status code written unquoted (200:) is the key "200".
                let key = match key {
                    Yaml::String(s) => s.clone(),
                    Yaml::Integer(i) => i.to_string(),
                    Yaml::Boolean(b) => b.to_string(),
                    _ => return Err(format!("{at}: a key that is not a string, number or boolean")),
                };
                let value = to_json(value, &format!("{at}/{key}"))?;
                object.insert(key, value);
            }
            Value::Object(object)
        }
        Yaml::Alias(_) | Yaml::BadValue => return Err(format!("{at}: aliases and bad values are not supported")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in `value`, with where it is.
    fn refs<'a>(value: &'a Value, at: &str, out: &mut Vec<(String, &'a str)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    if let ("$ref", Value::String(target)) = (k.as_str(), v) {
                        out.push((at.to_owned(), target));
                    }
                    refs(v, &format!("{at}/{k}"), out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    refs(v, &format!("{at}/{i}"), out);
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_contract_reads_as_openapi_3_1_and_every_reference_resolves() {
        let doc = document().unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut found = Vec::new();
        refs(&doc, "", &mut found);
        assert!(found.len() > 20, "{} references", found.len());
        for (at, target) in found {
            let pointer = target.strip_prefix('#').unwrap_or_else(|| panic!("{at}: external reference {target}"));
            assert!(doc.pointer(pointer).is_some(), "{at}: {target} does not resolve");
        }
        for (path, operations) in doc["paths"].as_object().unwrap() {
            // Path-level `parameters` sit beside the operations.
            for (method, operation) in operations.as_object().unwrap().iter().filter(|(k, _)| *k != "parameters") {
                for code in operation["responses"].as_object().unwrap().keys() {
                    assert!(code.len() == 3 && code.parse::<u16>().is_ok(), "{method} {path}: response {code:?}");
                }
            }
        }
        assert_eq!(json().unwrap(), doc.to_string());
    }

    #[test]
    fn yaml_scalars_become_the_json_they_mean() {
        let yaml = YamlLoader::load_from_str("a: 1\nb: 1.5\nc: true\nd: ~\n200: x\ne: '200'\nf: [1, two]\n").unwrap();
        let json = to_json(&yaml[0], "").unwrap();
        assert_eq!(
            json,
            serde_json::json!({"a": 1, "b": 1.5, "c": true, "d": null, "200": "x", "e": "200", "f": [1, "two"]})
        );
    }
}
