//! Commands that need no configuration and touch no AWS resource: check a template file
//! (`template validate`) and show what a provisioning request would do (`plan`).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::domain::template::{Template, TemplateError};

/// `plan`'s arguments.
#[derive(Debug, Args)]
pub(super) struct PlanArgs {
    /// A provisioning request (the CDF POST /things body: provisioningTemplateId,
    /// parameters, cdfProvisioningParameters).
    request: PathBuf,
    /// The template file to evaluate.
    #[arg(long)]
    template: PathBuf,
}

/// `plan`: the plan of a request against a template file, or every error.
pub(super) fn plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let request = super::read_json(&args.request)?;
    let template = super::read_text(&args.template)?;
    let parameters = request.get("parameters").cloned().unwrap_or_else(|| Value::Object(Default::default()));
    let cdf = request.get("cdfProvisioningParameters").cloned().unwrap_or(Value::Null);
    Ok(print_plan(&template, Some(&parameters), &cdf))
}

/// `template validate`: a template file's errors, or with parameters its plan.
pub(super) fn validate(
    file: &PathBuf,
    parameters: Option<&PathBuf>,
    cdf_parameters: Option<&PathBuf>,
) -> anyhow::Result<ExitCode> {
    let parameters = parameters.map(super::read_json).transpose()?;
    let cdf_parameters = cdf_parameters.map(super::read_json).transpose()?;
    let template = super::read_text(file)?;
    Ok(print_plan(&template, parameters.as_ref(), cdf_parameters.as_ref().unwrap_or(&Value::Null)))
}

/// Prints the plan (JSON, then its steps) or every error; exit code 1 on errors.
fn print_plan(template: &str, parameters: Option<&Value>, cdf_parameters: &Value) -> ExitCode {
    let report = |errors: Vec<TemplateError>| {
        for e in &errors {
            eprintln!("error: {e}");
        }
        eprintln!("{} error(s)", errors.len());
        ExitCode::from(1)
    };
    let template = match Template::parse(template) {
        Ok(t) => t,
        Err(errors) => return report(errors),
    };
    let Some(parameters) = parameters else {
        // Without parameters: every error that does not depend on their values.
        let errors = template.check_static();
        if !errors.is_empty() {
            return report(errors);
        }
        let declared: Vec<_> = template.parameters.keys().cloned().collect();
        println!("template is valid; parameters: {}", declared.join(", "));
        return ExitCode::SUCCESS;
    };
    let parameters = match parameters {
        Value::Object(map) => {
            let mut values = BTreeMap::new();
            for (k, v) in map {
                match v {
                    Value::String(s) => {
                        values.insert(k.clone(), s.clone());
                    }
                    other => {
                        return report(vec![TemplateError::request(
                            &format!("/parameters/{k}"),
                            format!("parameter values must be strings, not {other}"),
                        )]);
                    }
                }
            }
            values
        }
        _ => return report(vec![TemplateError::request("/parameters", "parameters must be an object")]),
    };
    match template.plan(&parameters, cdf_parameters) {
        Ok(plan) => {
            println!("{}", serde_json::to_string_pretty(&plan).unwrap_or_default());
            for (i, step) in plan.describe_steps().iter().enumerate() {
                println!("{:>2}. {step}", i + 1);
            }
            ExitCode::SUCCESS
        }
        Err(errors) => report(errors),
    }
}
