//! [`Things`] in memory: Things, their principals and their groups, with IoT's refusals (deleting a thing
//! that still has principals).

use async_trait::async_trait;

use super::{IotOp, MemoryRegistry, not_found};
use crate::domain::registry::{GroupInfo, ThingInfo};
use crate::domain::{Arn, ThingName};
use crate::ports::{ErrorKind, NewThing, PortError, Things};
use std::collections::BTreeMap as Map;

use super::ARN_PREFIX;

#[async_trait]
impl Things for MemoryRegistry {
    async fn describe_thing(&self, thing: &ThingName) -> Result<ThingInfo, PortError> {
        self.enter(IotOp::DescribeThing).await?;
        self.with(|r| {
            r.things.get(thing.as_str()).cloned().ok_or_else(|| not_found(IotOp::DescribeThing, thing.as_str()))
        })
    }

    async fn create_thing(&self, thing: &NewThing) -> Result<String, PortError> {
        self.enter(IotOp::CreateThing).await?;
        self.with(|r| {
            if let Some(t) = &thing.thing_type
                && !r.thing_types.contains(t)
            {
                return Err(not_found(IotOp::CreateThing, &format!("thing type {t}")));
            }
            if let Some(existing) = r.things.get(thing.name.as_str()) {
                if existing.attributes == thing.attributes && existing.thing_type == thing.thing_type {
                    return Ok(existing.arn.clone());
                }
                return Err(PortError::new(
                    ErrorKind::AlreadyExists,
                    IotOp::CreateThing.into(),
                    "thing exists with other properties",
                ));
            }
            let arn = format!("{ARN_PREFIX}:thing/{}", thing.name);
            r.things.insert(
                thing.name.to_string(),
                ThingInfo {
                    thing_name: thing.name.to_string(),
                    arn: arn.clone(),
                    thing_type: thing.thing_type.clone(),
                    attributes: thing.attributes.clone(),
                },
            );
            Ok(arn)
        })
    }

    async fn update_thing(
        &self,
        thing: &ThingName,
        thing_type: Option<&str>,
        attributes: &Map<String, String>,
        merge: bool,
    ) -> Result<(), PortError> {
        self.enter(IotOp::UpdateThing).await?;
        self.with(|r| {
            let t = r.things.get_mut(thing.as_str()).ok_or_else(|| not_found(IotOp::UpdateThing, thing.as_str()))?;
            if let Some(tt) = thing_type {
                t.thing_type = Some(tt.to_owned());
            }
            if !merge {
                t.attributes.clear();
            }
            t.attributes.extend(attributes.iter().map(|(k, v)| (k.clone(), v.clone())));
            Ok(())
        })
    }

    async fn delete_thing(&self, thing: &ThingName) -> Result<(), PortError> {
        self.enter(IotOp::DeleteThing).await?;
        self.with(|r| {
            if r.thing_principals.iter().any(|(t, _)| t == thing.as_str()) {
                return Err(PortError::new(
                    ErrorKind::Conflict,
                    IotOp::DeleteThing.into(),
                    "thing is still attached to one or more principals",
                ));
            }
            r.memberships.retain(|(t, _)| t != thing.as_str());
            // IoT answers success for a thing that does not exist.
            r.things.remove(thing.as_str());
            Ok(())
        })
    }

    async fn list_thing_principals(&self, thing: &ThingName) -> Result<Vec<Arn>, PortError> {
        self.enter(IotOp::ListThingPrincipals).await?;
        self.with(|r| {
            if !r.things.contains_key(thing.as_str()) {
                return Err(not_found(IotOp::ListThingPrincipals, thing.as_str()));
            }
            Ok(r.thing_principals.iter().filter(|(t, _)| t == thing.as_str()).map(|(_, p)| Arn::new(p)).collect())
        })
    }

    async fn list_principal_things(&self, principal: &Arn) -> Result<Vec<String>, PortError> {
        self.enter(IotOp::ListPrincipalThings).await?;
        self.with(|r| {
            Ok(r.thing_principals.iter().filter(|(_, p)| p == principal.as_str()).map(|(t, _)| t.clone()).collect())
        })
    }

    async fn attach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError> {
        self.enter(IotOp::AttachThingPrincipal).await?;
        self.with(|r| {
            if !r.things.contains_key(thing.as_str()) {
                return Err(not_found(IotOp::AttachThingPrincipal, thing.as_str()));
            }
            r.thing_principals.insert((thing.to_string(), principal.to_string()));
            Ok(())
        })
    }

    async fn detach_thing_principal(&self, thing: &ThingName, principal: &Arn) -> Result<(), PortError> {
        self.enter(IotOp::DetachThingPrincipal).await?;
        self.with(|r| {
            r.thing_principals.remove(&(thing.to_string(), principal.to_string()));
            Ok(())
        })
    }

    async fn list_thing_groups_for_thing(&self, thing: &ThingName) -> Result<Vec<String>, PortError> {
        self.enter(IotOp::ListThingGroupsForThing).await?;
        self.with(|r| Ok(r.memberships.iter().filter(|(t, _)| t == thing.as_str()).map(|(_, g)| g.clone()).collect()))
    }

    async fn describe_thing_group(&self, group: &str) -> Result<GroupInfo, PortError> {
        self.enter(IotOp::DescribeThingGroup).await?;
        self.with(|r| r.groups.get(group).cloned().ok_or_else(|| not_found(IotOp::DescribeThingGroup, group)))
    }

    async fn add_thing_to_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.enter(IotOp::AddThingToThingGroup).await?;
        self.with(|r| {
            if !r.groups.contains_key(group) {
                return Err(not_found(IotOp::AddThingToThingGroup, &format!("thing group {group}")));
            }
            r.memberships.insert((thing.to_string(), group.to_owned()));
            Ok(())
        })
    }

    async fn remove_thing_from_thing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.enter(IotOp::RemoveThingFromThingGroup).await?;
        self.with(|r| {
            r.memberships.remove(&(thing.to_string(), group.to_owned()));
            Ok(())
        })
    }

    async fn add_thing_to_billing_group(&self, thing: &ThingName, group: &str) -> Result<(), PortError> {
        self.enter(IotOp::AddThingToBillingGroup).await?;
        self.with(|r| {
            if !r.billing_groups.contains(group) {
                return Err(not_found(IotOp::AddThingToBillingGroup, &format!("billing group {group}")));
            }
            r.billing.insert((thing.to_string(), group.to_owned()));
            Ok(())
        })
    }
}
