//! [`ThingRegistration`] in memory: `RegisterThing`, recorded so tests can see what IoT would have been handed.

use async_trait::async_trait;

use super::{IotOp, MemoryRegistry};
use std::collections::BTreeMap as Map;

use crate::domain::registry::{Registration, ThingInfo};
use crate::ports::{PortError, ThingRegistration};

use super::ARN_PREFIX;

#[async_trait]
impl ThingRegistration for MemoryRegistry {
    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &Map<String, String>,
    ) -> Result<Registration, PortError> {
        self.enter(IotOp::RegisterThing).await?;
        self.with(|r| {
            r.registered.push((template_body.to_owned(), parameters.clone()));
            let mut arns = Map::new();
            if let Some(name) = parameters.get(crate::domain::thing::THING_NAME_PARAMETER) {
                let arn = format!("{ARN_PREFIX}:thing/{name}");
                r.things.entry(name.clone()).or_insert_with(|| ThingInfo {
                    thing_name: name.clone(),
                    arn: arn.clone(),
                    thing_type: None,
                    attributes: Map::new(),
                });
                arns.insert("thing".to_owned(), arn);
            }
            let pem = parameters.get("CertificateId").and_then(|id| r.certificates.get(id)).map(|c| {
                arns.insert("certificate".to_owned(), c.arn.to_string());
                c.certificate_pem.clone().unwrap_or_default()
            });
            Ok(Registration { certificate_pem: pem, resource_arns: arns })
        })
    }
}
