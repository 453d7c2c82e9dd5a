//! The shipped example templates (`infra/templates/`), their example requests
//! (`infra/templates/requests/`), and what they refer to in IoT, loaded in one place for every
//! test that provisions from them.
#![allow(dead_code, unreachable_pub)]

use serde_json::Value;

/// Every example, in the order the provisioning tests run them.
pub const NAMES: [&str; 6] =
    ["csr", "aws-issued", "ca-signed", "additional-policies", "group-and-type", "add_thing_to_group"];
/// The policy the examples attach by name.
pub const DEVICE_POLICY: &str = "cdf-example-device";
/// The groups the examples' requests name.
pub const GROUPS: [&str; 2] = ["cdf-example-eu", "cdf-example-us"];
/// The thing type `group-and-type` names.
pub const THING_TYPE: &str = "cdf-example-thermometer";
/// A policy document allowing a connection, for the policies tests make.
pub const ALLOW_CONNECT: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iot:Connect","Resource":"*"}]}"#;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/infra/templates");

/// The template `name`, as shipped.
pub fn template(name: &str) -> String {
    read(&format!("{DIR}/{name}.json"))
}

/// The example request of template `name`.
pub fn request(name: &str) -> Value {
    serde_json::from_str(&read(&format!("{DIR}/requests/{name}.json")))
        .unwrap_or_else(|e| panic!("the example request of {name} is not JSON: {e}"))
}

/// Every template in the directory (a new one is not missed): name and text.
pub fn all() -> Vec<(String, String)> {
    let mut found: Vec<(String, String)> = std::fs::read_dir(DIR)
        .unwrap_or_else(|e| panic!("reading {DIR}: {e}"))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .map(|path| {
            let name = path.file_stem().and_then(|s| s.to_str()).expect("a UTF-8 name").to_owned();
            let text = read(&path.display().to_string());
            (name, text)
        })
        .collect();
    found.sort();
    found
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}
