//! Readiness: whether the AWS dependencies a process needs answer, each probed with the
//! cheapest read that touches it (a record, a template and a thing that do not exist).

use crate::domain::{IdempotencyKey, ThingName};
use crate::ports::{ErrorKind, PortError};

use super::App;

/// One dependency's answer to its probe.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Check {
    /// Which dependency.
    pub dependency: &'static str,
    /// `None` when it answered; otherwise the operation that failed and how (no service text).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The probes' answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Readiness {
    /// Every dependency probed.
    pub checks: Vec<Check>,
}

impl Readiness {
    /// Whether every dependency answered.
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.problem.is_none())
    }
}

/// A probe passes when the dependency answered, "not found" included: the probe reads
/// something that is not there on purpose.
fn check<T>(dependency: &'static str, answer: Result<T, PortError>) -> Check {
    let problem = match answer {
        Ok(_) => None,
        Err(e) if e.kind == ErrorKind::NotFound => None,
        Err(e) => Some(format!("{} failed ({:?})", e.op, e.kind)),
    };
    Check { dependency, problem }
}

impl App {
    /// Probes the command-record table, the template store and AWS IoT, concurrently.
    pub async fn readiness(&self) -> Readiness {
        let probe = "cdf-readiness-probe";
        let thing = ThingName::parse(probe).expect("a valid thing name");
        let key = IdempotencyKey::new(probe);
        let (records, templates, iot) = tokio::join!(
            self.ports.state.get(&key),
            self.ports.templates.template(probe),
            self.ports.registry.describe_thing(&thing),
        );
        Readiness { checks: vec![check("records", records), check("templates", templates), check("iot", iot)] }
    }
}
