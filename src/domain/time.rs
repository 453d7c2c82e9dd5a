//! Instants, as records keep them: milliseconds since the Unix epoch. Spans of time are
//! [`std::time::Duration`]s; an instant moves by one and two instants are a span apart.
//!
//! This is the one place milliseconds become a calendar time (RFC 3339 for events and task
//! views), and the one place a store's expiry (DynamoDB TTL, unix seconds) is reckoned.

use std::ops::{Add, Sub};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// An instant, in milliseconds since the Unix epoch (stored and serialized as that number).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Self = Self(0);

    /// The instant `ms` milliseconds after the epoch.
    pub const fn from_millis(ms: i64) -> Self {
        Self(ms)
    }

    /// The instant a calendar time names, to the millisecond.
    pub fn from_datetime(at: OffsetDateTime) -> Self {
        Self(i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX))
    }

    /// Milliseconds since the epoch (what a store writes).
    pub const fn as_millis(self) -> i64 {
        self.0
    }

    /// The span from `earlier` to this instant; zero when `earlier` is not earlier.
    pub fn saturating_since(self, earlier: Self) -> Duration {
        Duration::from_millis(u64::try_from(self.0.saturating_sub(earlier.0)).unwrap_or(0))
    }

    /// This instant with its milliseconds dropped (rounded down to the whole second).
    pub fn whole_seconds(self) -> Self {
        Self(self.0.div_euclid(1_000).saturating_mul(1_000))
    }

    /// The calendar time, in UTC; the epoch for an instant the calendar cannot hold
    /// (beyond the years ±9999).
    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH)
    }

    /// RFC 3339 in UTC, with as many fractional digits as the milliseconds need (none for a
    /// whole second); empty for an instant before the year 0, which RFC 3339 cannot write.
    pub fn to_rfc3339(self) -> String {
        self.to_datetime().format(&Rfc3339).unwrap_or_default()
    }

    /// When a store may forget an item written at this instant and kept for `retention`:
    /// unix seconds, as DynamoDB's TTL reads them.
    pub fn expiry(self, retention: Duration) -> i64 {
        let retention = i64::try_from(retention.as_secs()).unwrap_or(i64::MAX);
        (self.0 / 1_000).saturating_add(retention)
    }
}

/// Milliseconds of a span, as instants count them (saturating).
fn millis(span: Duration) -> i64 {
    i64::try_from(span.as_millis()).unwrap_or(i64::MAX)
}

impl Add<Duration> for Timestamp {
    type Output = Self;

    /// The instant `span` later (saturating).
    fn add(self, span: Duration) -> Self {
        Self(self.0.saturating_add(millis(span)))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Self;

    /// The instant `span` earlier (saturating).
    fn sub(self, span: Duration) -> Self {
        Self(self.0.saturating_sub(millis(span)))
    }
}
