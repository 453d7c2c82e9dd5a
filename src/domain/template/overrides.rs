//! `OverrideSettings`: what provisioning does to a thing that already exists, decided from
//! the existing thing and the template's spec alone. The application layer reads the thing,
//! asks here what to change, and makes the calls.

use std::collections::BTreeMap;

use super::plan::{Override, ThingSpec};

/// What to change on an existing thing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ThingUpdate {
    /// Set this thing type (`ThingTypeName: REPLACE`).
    pub thing_type: Option<String>,
    /// Write the template's attributes (`AttributePayload: REPLACE` or `MERGE`).
    pub attributes: Option<AttributeUpdate>,
    /// The existing thing already has the template's attributes and type.
    pub matches: bool,
}

impl ThingUpdate {
    /// Whether any call is needed.
    pub fn is_empty(&self) -> bool {
        self.thing_type.is_none() && self.attributes.is_none()
    }
}

/// Attributes to write and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttributeUpdate {
    /// The template's attributes.
    pub attributes: BTreeMap<String, String>,
    /// Merge into the existing ones (`MERGE`) instead of replacing them (`REPLACE`).
    pub merge: bool,
}

/// Group memberships to change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupChanges {
    /// Groups to leave (`ThingGroups: REPLACE`).
    pub remove: Vec<String>,
    /// Groups to join.
    pub add: Vec<String>,
}

/// A difference the template's `OverrideSettings` say must fail provisioning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the thing exists with other {what} and OverrideSettings say FAIL")]
pub struct OverrideConflict {
    /// What differs: `attributes`, `thing type` or `groups`.
    pub what: &'static str,
}

impl ThingSpec {
    /// What to change on an existing thing with `thing_type` and `attributes`.
    pub fn reconcile(
        &self,
        thing_type: Option<&str>,
        attributes: &BTreeMap<String, String>,
    ) -> Result<ThingUpdate, OverrideConflict> {
        let attributes_differ = *attributes != self.attributes;
        let type_differs = self.thing_type.is_some() && thing_type != self.thing_type.as_deref();
        if attributes_differ && self.overrides.attribute_payload == Override::Fail {
            return Err(OverrideConflict { what: "attributes" });
        }
        if type_differs && self.overrides.thing_type_name == Override::Fail {
            return Err(OverrideConflict { what: "thing type" });
        }
        let thing_type = (type_differs && self.overrides.thing_type_name == Override::Replace)
            .then(|| self.thing_type.clone())
            .flatten();
        let merge = match self.overrides.attribute_payload {
            _ if !attributes_differ => None,
            Override::Replace => Some(false),
            Override::Merge => Some(true),
            Override::DoNothing | Override::Fail => None,
        };
        let attributes = merge.map(|merge| AttributeUpdate { attributes: self.attributes.clone(), merge });
        Ok(ThingUpdate { thing_type, attributes, matches: !attributes_differ && !type_differs })
    }

    /// Whether deciding the group changes needs the thing's current groups: only for a
    /// thing this command did not make, under `REPLACE` or `FAIL`.
    pub fn needs_current_groups(&self, created: bool) -> bool {
        !created && matches!(self.overrides.thing_groups, Override::Replace | Override::Fail)
    }

    /// The group changes for a thing made by this command (`created`) or found in `current`
    /// groups (read when [`ThingSpec::needs_current_groups`] says so, else empty).
    pub fn group_changes(&self, created: bool, current: &[String]) -> Result<GroupChanges, OverrideConflict> {
        let setting = self.overrides.thing_groups;
        if !created && setting == Override::Fail {
            let mut have = current.to_vec();
            have.sort();
            let mut wanted = self.thing_groups.clone();
            wanted.sort();
            if have != wanted {
                return Err(OverrideConflict { what: "groups" });
            }
        }
        let remove = if !created && setting == Override::Replace {
            current.iter().filter(|g| !self.thing_groups.contains(g)).cloned().collect()
        } else {
            Vec::new()
        };
        let add = if created || matches!(setting, Override::Merge | Override::Replace) {
            self.thing_groups.clone()
        } else {
            Vec::new()
        };
        Ok(GroupChanges { remove, add })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::template::plan::ThingOverrides;

    fn spec(overrides: ThingOverrides) -> ThingSpec {
        ThingSpec {
            logical_name: "thing".into(),
            thing_name: "t1".into(),
            attributes: BTreeMap::from([("a".into(), "1".into())]),
            thing_type: Some("sensor".into()),
            thing_groups: vec!["g1".into()],
            billing_group: None,
            overrides,
        }
    }

    fn attrs(value: &str) -> BTreeMap<String, String> {
        BTreeMap::from([("a".into(), value.into())])
    }

    #[test]
    fn a_matching_thing_needs_nothing_whatever_the_settings() {
        for setting in [Override::DoNothing, Override::Replace, Override::Merge, Override::Fail] {
            let s =
                spec(ThingOverrides { attribute_payload: setting, thing_type_name: setting, thing_groups: setting });
            let update = s.reconcile(Some("sensor"), &attrs("1")).unwrap();
            assert!(update.matches && update.is_empty(), "{setting:?}");
        }
    }

    #[test]
    fn each_setting_decides_what_changes() {
        let s = spec(ThingOverrides { attribute_payload: Override::Merge, ..Default::default() });
        let update = s.reconcile(Some("other"), &attrs("2")).unwrap();
        assert_eq!(update.attributes, Some(AttributeUpdate { attributes: attrs("1"), merge: true }));
        assert_eq!(update.thing_type, None, "DO_NOTHING keeps the type");
        assert!(!update.matches);

        let s = spec(ThingOverrides {
            attribute_payload: Override::Replace,
            thing_type_name: Override::Replace,
            ..Default::default()
        });
        let update = s.reconcile(Some("other"), &attrs("2")).unwrap();
        assert_eq!(update.attributes.map(|a| a.merge), Some(false));
        assert_eq!(update.thing_type.as_deref(), Some("sensor"));

        let s = spec(ThingOverrides { thing_type_name: Override::Fail, ..Default::default() });
        assert_eq!(s.reconcile(Some("other"), &attrs("1")).unwrap_err().what, "thing type");
        let s = spec(ThingOverrides { attribute_payload: Override::Fail, ..Default::default() });
        assert_eq!(s.reconcile(Some("sensor"), &attrs("2")).unwrap_err().what, "attributes");
    }

    #[test]
    fn groups_follow_their_setting() {
        let current = vec!["g0".to_owned()];
        let s = spec(ThingOverrides { thing_groups: Override::Replace, ..Default::default() });
        assert!(s.needs_current_groups(false) && !s.needs_current_groups(true));
        assert_eq!(
            s.group_changes(false, &current).unwrap(),
            GroupChanges { remove: vec!["g0".into()], add: vec!["g1".into()] }
        );
        let s = spec(ThingOverrides { thing_groups: Override::DoNothing, ..Default::default() });
        assert_eq!(s.group_changes(false, &[]).unwrap(), GroupChanges::default());
        assert_eq!(s.group_changes(true, &[]).unwrap().add, ["g1"], "a new thing joins its groups");
        let s = spec(ThingOverrides { thing_groups: Override::Fail, ..Default::default() });
        assert_eq!(s.group_changes(false, &current).unwrap_err().what, "groups");
        assert!(s.group_changes(false, &["g1".to_owned()]).is_ok());
    }
}
