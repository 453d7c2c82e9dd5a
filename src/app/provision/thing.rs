//! The thing: made, or found and reconciled with the template's `OverrideSettings`; then its
//! groups.

use std::collections::BTreeMap;

use super::resource_at;
use super::{Provisioner, fail, missing_as, thing_name_of};
use crate::app::progress::Progress;
use crate::domain::checkpoint::{Checkpoint, ThingStep};
use crate::domain::template::overrides::{GroupChanges, OverrideConflict};
use crate::domain::template::plan::ThingSpec;
use crate::domain::{CommandError, ErrorCode, ThingName};
use crate::ports::{ErrorKind, NewThing};

impl Provisioner<'_> {
    /// Creates the thing or reconciles an existing one per its OverrideSettings (checkpoint
    /// `thing`), then its groups (checkpoint `groups`).
    pub(super) async fn thing(&self, spec: &ThingSpec, progress: &mut Progress<'_>) -> Result<ThingStep, CommandError> {
        let name = thing_name_of(spec)?;
        let step = match progress.saved().thing.clone() {
            Some(step) => step,
            None => {
                let step = match self.registry.describe_thing(&name).await {
                    Err(e) if e.kind == ErrorKind::NotFound => {
                        let new = NewThing {
                            name: name.clone(),
                            thing_type: spec.thing_type.clone(),
                            attributes: spec.attributes.clone(),
                        };
                        let arn = self.registry.create_thing(&new).await.map_err(missing_as(|e| {
                            CommandError::new(ErrorCode::NotFound, e.message.clone()).at(resource_at(
                                &spec.logical_name,
                            )
                            .child("Properties")
                            .child("ThingTypeName"))
                        }))?;
                        ThingStep { arn, created: true }
                    }
                    Err(e) => return Err(fail(e)),
                    Ok(existing) => {
                        let update = spec
                            .reconcile(existing.thing_type.as_deref(), &existing.attributes)
                            .map_err(|conflict| override_conflict(spec, &name, conflict))?;
                        if !update.is_empty() {
                            let (attributes, merge) = match update.attributes {
                                Some(a) => (a.attributes, a.merge),
                                None => (BTreeMap::new(), true),
                            };
                            self.registry
                                .update_thing(&name, update.thing_type.as_deref(), &attributes, merge)
                                .await
                                .map_err(fail)?;
                        }
                        // A thing identical to the spec is taken as this command's own work (a
                        // resumed attempt), so compensation may remove it; any other is not ours.
                        ThingStep { arn: existing.arn, created: progress.attempt.resumed && update.matches }
                    }
                };
                if step.created {
                    // A resumed attempt finds this thing identical to the spec and takes it as
                    // its own again (above): the checkpoint can wait for the next write.
                    progress.defer(Checkpoint::Thing(step.clone()));
                } else {
                    progress.save(Checkpoint::Thing(step.clone())).await?;
                }
                step
            }
        };
        if progress.saved().groups {
            return Ok(step);
        }
        let current = if spec.needs_current_groups(step.created) {
            self.registry.list_thing_groups_for_thing(&name).await.map_err(fail)?
        } else {
            Vec::new()
        };
        let changes =
            spec.group_changes(step.created, &current).map_err(|conflict| override_conflict(spec, &name, conflict))?;
        if changes == GroupChanges::default() && spec.billing_group.is_none() {
            // Nothing to do, and nothing worth a checkpoint.
            return Ok(step);
        }
        for group in &changes.remove {
            self.registry.remove_thing_from_thing_group(&name, group).await.map_err(fail)?;
        }
        for group in &changes.add {
            self.registry.add_thing_to_thing_group(&name, group).await.map_err(missing_as(|_| {
                CommandError::new(ErrorCode::NotFound, format!("thing group {group:?} does not exist")).at(resource_at(
                    &spec.logical_name,
                )
                .child("Properties")
                .child("ThingGroups"))
            }))?;
        }
        if let Some(billing) = &spec.billing_group {
            self.registry.add_thing_to_billing_group(&name, billing).await.map_err(fail)?;
        }
        // Adding to a group again is harmless: a resumed attempt may redo it.
        progress.defer(Checkpoint::Groups);
        Ok(step)
    }
}

fn override_conflict(spec: &ThingSpec, name: &ThingName, conflict: OverrideConflict) -> CommandError {
    CommandError::new(ErrorCode::InvalidState, format!("thing {name}: {conflict}"))
        .at(resource_at(&spec.logical_name).child("OverrideSettings"))
}
