//! [`Things`] on IoT: things, their principals and their groups. Lists are read to their last
//! page with the SDK's paginators.

use std::collections::BTreeMap;

use async_trait::async_trait;
use aws_sdk_iot::types::AttributePayload;

use super::IotRegistry;
use crate::adapters::aws::error::failed;
use crate::domain::registry::{GroupInfo, ThingInfo};
use crate::domain::{Arn, ThingName};
use crate::ports::{IotOperation, NewThing, PortError, Things};

/// Items per page of the list calls (IoT's maximum).
const PAGE: i32 = 100;

#[async_trait]
impl Things for IotRegistry {
    async fn describe_thing(&self, thing: &ThingName) -> Result<ThingInfo, PortError> {
        let out = self
            .client
            .describe_thing()
            .thing_name(thing.as_str())
            .send()
            .await
            .map_err(failed(IotOperation::DescribeThing.op()))?;
        Ok(ThingInfo {
            thing_name: out.thing_name().unwrap_or(thing.as_str()).to_owned(),
            arn: out.thing_arn().unwrap_or_default().to_owned(),
            thing_type: out.thing_type_name().map(str::to_owned),
            attributes: out.attributes().cloned().unwrap_or_default().into_iter().collect(),
        })
    }

    async fn create_thing(&self, thing: &NewThing) -> Result<String, PortError> {
        let payload =
            AttributePayload::builder().set_attributes(Some(thing.attributes.clone().into_iter().collect())).build();
        let out = self
            .client
            .create_thing()
            .thing_name(thing.name.as_str())
            .set_thing_type_name(thing.thing_type.clone())
            .attribute_payload(payload)
            .send()
            .await
            .map_err(failed(IotOperation::CreateThing.op()))?;
        Ok(out.thing_arn().unwrap_or_default().to_owned())
    }

    async fn update_thing(
        &self,
        thing: &ThingName,
        thing_type: Option<&str>,
        attributes: &BTreeMap<String, String>,
        merge: bool,
    ) -> Result<(), PortError> {
        let payload = AttributePayload::builder()
            .set_attributes(Some(attributes.clone().into_iter().collect()))
            .merge(merge)
            .build();
        self.client
            .update_thing()
            .thing_name(thing.as_str())
            .set_thing_type_name(thing_type.map(str::to_owned))
            .attribute_payload(payload)
            .send()
            .await
            .map_err(failed(IotOperation::UpdateThing.op()))?;
        Ok(())
    }

    async fn delete_thing(&self, thing: &ThingName) -> Result<(), PortError> {
        self.client
            .delete_thing()
            .thing_name(thing.as_str())
            .send()
            .await
            .map_err(failed(IotOperation::DeleteThing.op()))?;
        Ok(())
    }

    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<Arn>, PortError> {
        let principals: Vec<String> = self
            .client
            .list_thing_principals()
            .thing_name(thing.as_str())
            .max_results(PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(failed(IotOperation::ListThingPrincipals.op()))?;
        Ok(principals.into_iter().map(Arn::new).collect())
    }

    async fn list_principal_things(&self, principal: &Arn) -> Result<Vec<String>, PortError> {
        self.client
            .list_principal_things()
            .principal(principal.as_str())
            .max_results(PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(failed(IotOperation::ListPrincipalThings.op()))
    }

    async fn attach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError> {
        self.client
            .attach_thing_principal()
            .thing_name(thing.as_str())
            .principal(principal.as_str())
            .send()
            .await
            .map_err(failed(IotOperation::AttachThingPrincipal.op()))?;
        Ok(())
    }

    async fn detach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError> {
        self.client
            .detach_thing_principal()
            .thing_name(thing.as_str())
            .principal(principal.as_str())
            .send()
            .await
            .map_err(failed(IotOperation::DetachThingPrincipal.op()))?;
        Ok(())
    }

    async fn list_thing_groups_for_thing(&self, thing: &ThingName) -> Result<Vec<String>, PortError> {
        let groups: Vec<_> = self
            .client
            .list_thing_groups_for_thing()
            .thing_name(thing.as_str())
            .max_results(PAGE)
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .map_err(failed(IotOperation::ListThingGroupsForThing.op()))?;
        Ok(groups.iter().filter_map(|g| g.group_name().map(str::to_owned)).collect())
    }

    async fn describe_thing_group(&self, group: &str) -> Result<GroupInfo, PortError> {
        let out = self
            .client
            .describe_thing_group()
            .thing_group_name(group)
            .send()
            .await
            .map_err(failed(IotOperation::DescribeThingGroup.op()))?;
        let attributes = out
            .thing_group_properties()
            .and_then(|p| p.attribute_payload())
            .and_then(|a| a.attributes())
            .cloned()
            .unwrap_or_default();
        Ok(GroupInfo {
            group_name: out.thing_group_name().unwrap_or(group).to_owned(),
            arn: out.thing_group_arn().unwrap_or_default().to_owned(),
            attributes: attributes.into_iter().collect(),
        })
    }

    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.client
            .add_thing_to_thing_group()
            .thing_name(thing.as_str())
            .thing_group_name(group)
            .send()
            .await
            .map_err(failed(IotOperation::AddThingToThingGroup.op()))?;
        Ok(())
    }

    async fn remove_thing_from_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.client
            .remove_thing_from_thing_group()
            .thing_name(thing.as_str())
            .thing_group_name(group)
            .send()
            .await
            .map_err(failed(IotOperation::RemoveThingFromThingGroup.op()))?;
        Ok(())
    }

    async fn add_thing_to_billing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.client
            .add_thing_to_billing_group()
            .thing_name(thing.as_str())
            .billing_group_name(group)
            .send()
            .await
            .map_err(failed(IotOperation::AddThingToBillingGroup.op()))?;
        Ok(())
    }
}
