//! [`ThingRegistration`] on IoT: `RegisterThing`, where IoT evaluates the template itself.

use std::collections::BTreeMap;

use async_trait::async_trait;

use super::IotRegistry;
use crate::adapters::aws::error::failed;
use crate::domain::registry::Registration;
use crate::ports::{IotOperation, PortError, ThingRegistration};

#[async_trait]
impl ThingRegistration for IotRegistry {
    async fn register_thing(
        &self,
        template_body: &str,
        parameters: &BTreeMap<String, String>,
    ) -> Result<Registration, PortError> {
        let out = self
            .client
            .register_thing()
            .template_body(template_body)
            .set_parameters(Some(parameters.clone().into_iter().collect()))
            .send()
            .await
            .map_err(failed(IotOperation::RegisterThing.op()))?;
        Ok(Registration {
            certificate_pem: out.certificate_pem().map(str::to_owned),
            resource_arns: out.resource_arns().cloned().unwrap_or_default().into_iter().collect(),
        })
    }
}
