//! Evaluates AWS IoT template values: `Ref` to parameters and the intrinsic functions IoT
//! documents for provisioning templates (`Fn::Join`, `Fn::Sub`, `Fn::Select`, `Fn::Split`,
//! `Fn::FindInMap`). Every error names the JSON path (RFC 6901 pointer) of the expression at
//! fault.
//!
//! A value that is not known yet (a parameter when a template is checked without parameters,
//! or one CDF fills in later) is a string carrying [`UNKNOWN_MARK`]; functions of unknowns are
//! unknown, so that what can be checked is, and what depends on a value is left for later.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};

use super::TemplateError;

/// Marks a value not known yet. A control character: no request value can carry one.
pub const UNKNOWN_MARK: char = '\u{1}';

/// Whether `value` is, or is made from, a value not known yet.
pub fn is_unknown(value: &Value) -> bool {
    matches!(value, Value::String(s) if s.contains(UNKNOWN_MARK))
}

/// A value not known yet, standing for any string or list.
pub fn unknown() -> Value {
    Value::String(format!("{UNKNOWN_MARK}unknown{UNKNOWN_MARK}"))
}

/// The functions this engine evaluates.
pub const FUNCTIONS: [&str; 5] = ["Fn::Join", "Fn::Sub", "Fn::Select", "Fn::Split", "Fn::FindInMap"];

/// What expressions can refer to.
#[derive(Debug)]
pub struct Scope<'a> {
    /// Parameter values, after defaults.
    pub parameters: &'a BTreeMap<String, String>,
    /// The template's `Mappings` section.
    pub mappings: &'a Map<String, Value>,
    /// Declared parameters the request does not give and that have no default: an error
    /// only where they are used, as in IoT.
    pub missing: &'a BTreeSet<String>,
}

/// Escapes one JSON pointer segment.
pub fn segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// `path` + `/` + escaped `key`.
pub fn child(path: &str, key: &str) -> String {
    format!("{path}/{}", segment(key))
}

fn err(path: &str, message: impl Into<String>) -> TemplateError {
    TemplateError::new(path, message)
}

impl Scope<'_> {
    /// Evaluates every expression inside `value`.
    pub fn eval(&self, value: &Value, path: &str) -> Result<Value, TemplateError> {
        match value {
            Value::Object(map) if map.len() == 1 => {
                let (key, arg) = map.iter().next().expect("one entry");
                let at = child(path, key);
                match key.as_str() {
                    "Ref" => self.reference(arg, &at),
                    "Fn::Join" => self.join(arg, &at),
                    "Fn::Sub" => self.sub(arg, &at),
                    "Fn::Select" => self.select(arg, &at),
                    "Fn::Split" => self.split(arg, &at),
                    "Fn::FindInMap" => self.find_in_map(arg, &at),
                    other if other.starts_with("Fn::") => Err(err(
                        &at,
                        format!(
                            "unknown function {other}; provisioning templates support Ref, {}",
                            FUNCTIONS.join(", ")
                        ),
                    )),
                    _ => self.eval_object(map, path),
                }
            }
            Value::Object(map) => self.eval_object(map, path),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, v)| self.eval(v, &child(path, &i.to_string())))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            scalar => Ok(scalar.clone()),
        }
    }

    fn eval_object(&self, map: &Map<String, Value>, path: &str) -> Result<Value, TemplateError> {
        let mut out = Map::new();
        for (k, v) in map {
            out.insert(k.clone(), self.eval(v, &child(path, k))?);
        }
        Ok(Value::Object(out))
    }

    /// Evaluates `value` and requires a string.
    pub fn string(&self, value: &Value, path: &str, what: &str) -> Result<String, TemplateError> {
        match self.eval(value, path)? {
            Value::String(s) => Ok(s),
            other => Err(err(path, format!("{what} must be a string, not {}", kind(&other)))),
        }
    }

    fn reference(&self, arg: &Value, path: &str) -> Result<Value, TemplateError> {
        let Value::String(name) = arg else {
            return Err(err(path, format!("Ref takes a parameter name, not {}", kind(arg))));
        };
        if let Some(v) = self.parameters.get(name) {
            return Ok(Value::String(v.clone()));
        }
        Err(self
            .missing_parameter(name, path)
            .unwrap_or_else(|| err(path, format!("Ref to {name:?}, which is not a declared parameter"))))
    }

    fn missing_parameter(&self, name: &str, path: &str) -> Option<TemplateError> {
        self.missing.contains(name).then(|| {
            TemplateError::request(
                &child("/parameters", name),
                format!("parameter {name:?} is required (used at {path}): the request does not give it and the template declares no Default"),
            )
        })
    }

    fn args<'v>(&self, arg: &'v Value, path: &str, name: &str, arity: usize) -> Result<&'v [Value], TemplateError> {
        match arg {
            Value::Array(items) if items.len() == arity => Ok(items),
            Value::Array(items) => Err(err(path, format!("{name} takes {arity} arguments, got {}", items.len()))),
            other => Err(err(path, format!("{name} takes a list of {arity} arguments, not {}", kind(other)))),
        }
    }

    /// A list of strings; `None` when the list is not known yet.
    fn list(&self, value: &Value, path: &str, name: &str) -> Result<Option<Vec<String>>, TemplateError> {
        match self.eval(value, path)? {
            unknown if is_unknown(&unknown) => Ok(None),
            Value::Array(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    other => {
                        Err(err(&child(path, &i.to_string()), format!("{name} needs strings, not {}", kind(&other))))
                    }
                })
                .collect::<Result<_, _>>()
                .map(Some),
            other => Err(err(path, format!("{name} needs a list, not {}", kind(&other)))),
        }
    }

    fn join(&self, arg: &Value, path: &str) -> Result<Value, TemplateError> {
        let args = self.args(arg, path, "Fn::Join", 2)?;
        let delimiter = self.string(&args[0], &child(path, "0"), "the Fn::Join delimiter")?;
        let Some(items) = self.list(&args[1], &child(path, "1"), "Fn::Join")? else { return Ok(unknown()) };
        Ok(Value::String(items.join(&delimiter)))
    }

    fn split(&self, arg: &Value, path: &str) -> Result<Value, TemplateError> {
        let args = self.args(arg, path, "Fn::Split", 2)?;
        let delimiter = self.string(&args[0], &child(path, "0"), "the Fn::Split delimiter")?;
        if delimiter.is_empty() {
            return Err(err(&child(path, "0"), "the Fn::Split delimiter must not be empty"));
        }
        let source = self.string(&args[1], &child(path, "1"), "the Fn::Split source")?;
        // How many pieces an unknown string makes is unknown too.
        if source.contains(UNKNOWN_MARK) || delimiter.contains(UNKNOWN_MARK) {
            return Ok(unknown());
        }
        Ok(Value::Array(source.split(delimiter.as_str()).map(|s| Value::String(s.to_owned())).collect()))
    }

    fn select(&self, arg: &Value, path: &str) -> Result<Value, TemplateError> {
        let args = self.args(arg, path, "Fn::Select", 2)?;
        let index_path = child(path, "0");
        let index = match self.eval(&args[0], &index_path)? {
            unknown if is_unknown(&unknown) => {
                self.list(&args[1], &child(path, "1"), "Fn::Select")?;
                return Ok(self::unknown());
            }
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.parse::<u64>().ok(),
            _ => None,
        }
        .ok_or_else(|| err(&index_path, "the Fn::Select index must be a non-negative integer"))?;
        let Some(items) = self.list(&args[1], &child(path, "1"), "Fn::Select")? else { return Ok(unknown()) };
        usize::try_from(index)
            .ok()
            .and_then(|i| items.get(i))
            .map(|s| Value::String(s.clone()))
            .ok_or_else(|| err(&index_path, format!("index {index} is out of range for a list of {}", items.len())))
    }

    fn find_in_map(&self, arg: &Value, path: &str) -> Result<Value, TemplateError> {
        let args = self.args(arg, path, "Fn::FindInMap", 3)?;
        let map_name = self.string(&args[0], &child(path, "0"), "the map name")?;
        let top = self.string(&args[1], &child(path, "1"), "the top-level key")?;
        let second = self.string(&args[2], &child(path, "2"), "the second-level key")?;
        if map_name.contains(UNKNOWN_MARK) {
            return Ok(unknown());
        }
        let map = self.mappings.get(&map_name).ok_or_else(|| {
            let known = if self.mappings.is_empty() { " (the template has no Mappings)" } else { "" };
            err(&child(path, "0"), format!("no mapping named {map_name:?} in Mappings{known}"))
        })?;
        if top.contains(UNKNOWN_MARK) {
            return Ok(unknown());
        }
        let level =
            map.get(&top).ok_or_else(|| err(&child(path, "1"), format!("mapping {map_name:?} has no key {top:?}")))?;
        if second.contains(UNKNOWN_MARK) {
            return Ok(unknown());
        }
        let value = level
            .get(&second)
            .ok_or_else(|| err(&child(path, "2"), format!("mapping {map_name:?}/{top:?} has no key {second:?}")))?;
        Ok(value.clone())
    }

    fn sub(&self, arg: &Value, path: &str) -> Result<Value, TemplateError> {
        let (text, variables) = match arg {
            Value::String(s) => (s.clone(), BTreeMap::new()),
            Value::Array(items) if items.len() == 2 => {
                let text = match &items[0] {
                    Value::String(s) => s.clone(),
                    other => {
                        return Err(err(&child(path, "0"), format!("Fn::Sub needs a string, not {}", kind(other))));
                    }
                };
                let Value::Object(vars) = &items[1] else {
                    return Err(err(&child(path, "1"), "Fn::Sub variables must be an object"));
                };
                let mut variables = BTreeMap::new();
                for (k, v) in vars {
                    let at = child(&child(path, "1"), k);
                    variables.insert(k.clone(), self.string(v, &at, "a Fn::Sub variable")?);
                }
                (text, variables)
            }
            other => {
                return Err(err(path, format!("Fn::Sub takes a string or [string, variables], not {}", kind(other))));
            }
        };
        let mut out = String::with_capacity(text.len());
        let mut rest = text.as_str();
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after.find('}').ok_or_else(|| err(path, "Fn::Sub has an unclosed ${"))?;
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = variables.get(name).or_else(|| self.parameters.get(name)) {
                out.push_str(v);
            } else {
                return Err(self.missing_parameter(name, path).unwrap_or_else(|| {
                    err(path, format!("Fn::Sub refers to ${{{name}}}, which is neither a variable nor a parameter"))
                }));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(Value::String(out))
    }
}

/// A JSON value's kind, for messages.
pub fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[allow(clippy::needless_pass_by_value)]
    fn eval(value: Value) -> Result<Value, TemplateError> {
        let parameters =
            BTreeMap::from([("Name".to_owned(), "dev-1".to_owned()), ("Csv".to_owned(), "a,b,c".to_owned())]);
        let mappings = json!({"Sites": {"berlin": {"Group": "eu-fleet"}}}).as_object().unwrap().clone();
        Scope { parameters: &parameters, mappings: &mappings, missing: &BTreeSet::new() }.eval(&value, "/Resources/x")
    }

    #[test]
    fn functions_compose() {
        assert_eq!(eval(json!({"Ref": "Name"})).unwrap(), json!("dev-1"));
        assert_eq!(eval(json!({"Fn::Join": ["-", ["a", {"Ref": "Name"}]]})).unwrap(), json!("a-dev-1"));
        assert_eq!(eval(json!({"Fn::Select": [1, {"Fn::Split": [",", {"Ref": "Csv"}]}]})).unwrap(), json!("b"));
        assert_eq!(eval(json!({"Fn::Select": ["2", {"Fn::Split": [",", {"Ref": "Csv"}]}]})).unwrap(), json!("c"));
        assert_eq!(eval(json!({"Fn::Sub": "thing/${Name}/${!Literal}"})).unwrap(), json!("thing/dev-1/${Literal}"));
        assert_eq!(eval(json!({"Fn::Sub": ["${Site}-${Name}", {"Site": "berlin"}]})).unwrap(), json!("berlin-dev-1"));
        assert_eq!(eval(json!({"Fn::FindInMap": ["Sites", "berlin", "Group"]})).unwrap(), json!("eu-fleet"));
        assert_eq!(eval(json!({"a": [{"Ref": "Name"}, 1]})).unwrap(), json!({"a": ["dev-1", 1]}));
    }

    #[test]
    fn errors_point_into_the_expression() {
        let e = eval(json!({"k": {"Fn::Join": ["-", ["a", {"Ref": "Nope"}]]}})).unwrap_err();
        assert_eq!(e.path, "/Resources/x/k/Fn::Join/1/1/Ref");
        let e = eval(json!({"Fn::If": []})).unwrap_err();
        assert_eq!(e.path, "/Resources/x/Fn::If");
        assert!(e.message.contains("unknown function"));
    }
}
