//! `getThing`: a thing with its attributes and type, every attached certificate with its real
//! status, their policies, and the thing's groups with their attributes. Every list is read
//! to its last page.

use std::collections::BTreeSet;

use futures::{StreamExt, TryStreamExt, stream};

use super::thing_error;
use crate::domain::registry::{CertificateInfo, ThingDescription};
use crate::domain::{CommandError, ThingName};
use crate::ports::{Certificates, ErrorKind, Policies, PortError, Things};

/// How many look-ups run at once (IoT's describe quotas are 10 TPS for certificates).
const PARALLEL_LOOKUPS: usize = 4;

/// Describes `thing` from what the registry knows of things, certificates and policies.
pub async fn describe_thing<R: Things + Certificates + Policies + ?Sized>(
    registry: &R,
    thing: &ThingName,
) -> Result<ThingDescription, CommandError> {
    let info = registry.describe_thing(thing).await.map_err(thing_error(thing))?;
    let (principals, group_names) =
        futures::try_join!(registry.list_thing_principals(thing), registry.list_thing_groups_for_thing(thing))
            .map_err(thing_error(thing))?;

    let certificates: Vec<_> =
        principals.into_iter().filter_map(|arn| arn.certificate_id().map(|id| (id, arn))).collect();
    let per_certificate: Vec<(CertificateInfo, Vec<String>)> = stream::iter(certificates)
        .map(|(id, arn)| async move {
            let (cert, policies) =
                futures::try_join!(registry.describe_certificate(&id), registry.list_attached_policies(&arn))?;
            Ok::<_, PortError>((cert, policies))
        })
        .buffered(PARALLEL_LOOKUPS)
        .try_collect()
        .await
        .map_err(|e| e.to_command_error())?;

    let policy_names: BTreeSet<String> = per_certificate.iter().flat_map(|(_, p)| p.iter().cloned()).collect();
    let (certificates, _): (Vec<_>, Vec<_>) = per_certificate.into_iter().unzip();

    // A policy or group deleted between the listing and the look-up is simply not reported.
    let policies = look_up_existing(policy_names, |name| async move { registry.get_policy(&name).await }).await?;
    let groups =
        look_up_existing(group_names, |name| async move { registry.describe_thing_group(&name).await }).await?;

    Ok(ThingDescription {
        thing_name: info.thing_name,
        arn: info.arn,
        thing_type: info.thing_type,
        attributes: info.attributes,
        certificates,
        policies,
        groups,
    })
}

/// Looks every name up, a few at a time, leaving out those that no longer exist.
async fn look_up_existing<T, F, Fut>(
    names: impl IntoIterator<Item = String>,
    look_up: F,
) -> Result<Vec<T>, CommandError>
where
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<T, PortError>>,
{
    let found: Vec<Option<T>> = stream::iter(names)
        .map(|name| {
            let lookup = look_up(name);
            async move {
                match lookup.await {
                    Ok(v) => Ok(Some(v)),
                    Err(e) if e.kind == ErrorKind::NotFound => Ok(None),
                    Err(e) => Err(e),
                }
            }
        })
        .buffered(PARALLEL_LOOKUPS)
        .try_collect()
        .await
        .map_err(|e: PortError| e.to_command_error())?;
    Ok(found.into_iter().flatten().collect())
}
