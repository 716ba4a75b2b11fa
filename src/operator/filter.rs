//! The filters of `GET /events` (and of the bulk jobs that take the same filters), and the
//! opaque cursor that pages through them.
//!
//! Parsed by hand from the raw query string rather than by a lenient form guard, because an
//! operator's typo must not be ignored: `?staus=dead` silently listing *every* event is how a
//! bulk redrive touches what nobody meant. Unknown or repeated parameters are a 400 that
//! names them.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, Utc};

use crate::event::key::Sha256Digest;
use crate::status::{DeliveryStatus, EventStatus};

/// The default page size, and the largest an operator may ask for.
pub const DEFAULT_LIMIT: u64 = 50;
pub const MAX_LIMIT: u64 = 500;

/// What an event is, as the list filters it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Its handlers committed.
    Processed,
    /// Attempted, never committed (its attempts are in `failed_attempts`).
    Failed,
    /// A handler refused it for good.
    Rejected,
    /// Forwarding: its delivery is waiting for an attempt.
    DeliveryPending,
    Delivered,
    /// Forwarding: its delivery ran out of attempts.
    Dead,
}

impl Status {
    pub const ALL: [Status; 6] = [
        Status::Processed,
        Status::Failed,
        Status::Rejected,
        Status::DeliveryPending,
        Status::Delivered,
        Status::Dead,
    ];

    /// The filter's name in a query string: the stored status it selects, except
    /// `delivery_pending` (a pending delivery, not a pending event).
    pub fn as_str(self) -> &'static str {
        match (self.event_status(), self.delivery_status()) {
            (Some(status), _) => status.as_str(),
            (None, Some(DeliveryStatus::Pending)) => "delivery_pending",
            (None, Some(status)) => status.as_str(),
            (None, None) => unreachable!("every filter status selects an event or a delivery"),
        }
    }

    fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// The status of a `deliveries` row this filter selects, for the forwarding ones.
    pub fn delivery_status(self) -> Option<DeliveryStatus> {
        match self {
            Status::DeliveryPending => Some(DeliveryStatus::Pending),
            Status::Delivered => Some(DeliveryStatus::Delivered),
            Status::Dead => Some(DeliveryStatus::Dead),
            _ => None,
        }
    }

    /// The event status this filter selects, for the others.
    pub fn event_status(self) -> Option<EventStatus> {
        match self {
            Status::Processed => Some(EventStatus::Processed),
            Status::Failed => Some(EventStatus::Failed),
            Status::Rejected => Some(EventStatus::Rejected),
            _ => None,
        }
    }
}

/// The filters every list and bulk job takes. All optional; together they narrow (AND).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Filters {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<Status>,
    /// Inclusive lower bound of the event's time (processed, last failed, or delivery created).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub since: Option<DateTime<Utc>>,
    /// Exclusive upper bound.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// With a delivery status: that destination's delivery is in it. Without one, a delivery
    /// status speaks of the event's deliveries together (`delivered`: every one; `dead`,
    /// `delivery_pending`: any one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// A list request: filters, page size, and where the page starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    pub filters: Filters,
    pub limit: u64,
    pub cursor: Option<Cursor>,
}

/// A position in a newest-first list: the last item's time and digest. Items strictly older
/// (or as old with a smaller digest) come next, so a page never repeats an item and events
/// that arrive while an operator pages (always newer) never push items across pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub at: DateTime<Utc>,
    pub digest: Sha256Digest,
}

/// Why a query was refused: the message is the 400's.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct FilterError(pub String);

impl Cursor {
    /// `base64url("<unix nanos>.<hex digest>")`: opaque to clients, and full precision (SQLite
    /// keeps nanoseconds, so a microsecond cursor would skip or repeat equal-time rows there).
    pub fn encode(&self) -> String {
        let nanos = self.at.timestamp_nanos_opt().unwrap_or(i64::MAX);
        URL_SAFE_NO_PAD.encode(format!("{nanos}.{}", hex::encode(self.digest)))
    }

    pub fn decode(s: &str) -> Result<Cursor, FilterError> {
        let bad = || FilterError("`cursor` is not a cursor this API returned".into());
        let raw = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        let raw = String::from_utf8(raw).map_err(|_| bad())?;
        let (nanos, digest) = raw.split_once('.').ok_or_else(bad)?;
        let nanos: i64 = nanos.parse().map_err(|_| bad())?;
        let digest: Sha256Digest = hex::decode(digest)
            .ok()
            .and_then(|d| d.try_into().ok())
            .ok_or_else(bad)?;
        Ok(Cursor {
            at: DateTime::from_timestamp_nanos(nanos),
            digest,
        })
    }
}

/// The `(name, value)` pairs of a query string, percent-decoded, every name checked against
/// `allowed` and given at most once.
pub fn pairs(query: Option<&str>, allowed: &[&str]) -> Result<Vec<(String, String)>, FilterError> {
    let mut seen: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(FilterError(format!(
                "unknown query parameter `{name}`; this endpoint takes: {}",
                allowed.join(", ")
            )));
        }
        if seen.iter().any(|(n, _)| *n == name) {
            return Err(FilterError(format!("`{name}` is given more than once")));
        }
        seen.push((name.into_owned(), value.into_owned()));
    }
    Ok(seen)
}

/// The filter parameters.
pub const FILTER_PARAMS: [&str; 6] = ["source", "type", "status", "since", "until", "destination"];

impl Filters {
    /// Takes the filter parameters out of `pairs`, leaving the others.
    pub fn take(pairs: &mut Vec<(String, String)>) -> Result<Filters, FilterError> {
        let mut filters = Filters::default();
        let mut rest = Vec::new();
        for (name, value) in pairs.drain(..) {
            match name.as_str() {
                "source" => filters.source = Some(non_empty(&name, value)?),
                "type" => filters.event_type = Some(non_empty(&name, value)?),
                "status" => {
                    filters.status = Some(Status::parse(&value).ok_or_else(|| {
                        FilterError(format!(
                            "`status` must be one of: {}",
                            Status::ALL.map(Status::as_str).join(", ")
                        ))
                    })?)
                }
                "since" => filters.since = Some(instant(&name, &value)?),
                "until" => filters.until = Some(instant(&name, &value)?),
                "destination" => filters.destination = Some(destination(value)?),
                _ => rest.push((name, value)),
            }
        }
        *pairs = rest;
        if let (Some(since), Some(until)) = (filters.since, filters.until) {
            if since >= until {
                return Err(FilterError("`since` must be before `until`".into()));
            }
        }
        Ok(filters)
    }

    /// A `destination` only narrows a delivery status (a job's default status counts: check
    /// once it is set).
    pub fn check_destination(&self) -> Result<(), FilterError> {
        if self.destination.is_some() && self.status.and_then(Status::delivery_status).is_none() {
            return Err(FilterError(
                "`destination` narrows a delivery status: give `status` as delivery_pending, \
                 delivered or dead"
                    .into(),
            ));
        }
        Ok(())
    }
}

/// A destination's name as the configuration allows it (`[a-z0-9_-]{1,64}`): anything else
/// names no destination, and is refused before it reaches a query (a NUL byte is an error on
/// PostgreSQL, not a miss).
pub fn destination(value: String) -> Result<String, FilterError> {
    if crate::config::valid_destination_name(&value) {
        Ok(value)
    } else {
        Err(FilterError(
            "`destination` is a destination's name: 1 to 64 of a-z, 0-9, '_' and '-'".into(),
        ))
    }
}

impl ListQuery {
    /// `GET /events`'s query string.
    pub fn parse(query: Option<&str>) -> Result<ListQuery, FilterError> {
        let allowed: Vec<&str> = FILTER_PARAMS
            .iter()
            .copied()
            .chain(["limit", "cursor"])
            .collect();
        let mut pairs = pairs(query, &allowed)?;
        let filters = Filters::take(&mut pairs)?;
        filters.check_destination()?;
        let mut list = ListQuery {
            filters,
            limit: DEFAULT_LIMIT,
            cursor: None,
        };
        for (name, value) in pairs {
            match name.as_str() {
                "limit" => list.limit = limit(&value)?,
                "cursor" => list.cursor = Some(Cursor::decode(&value)?),
                _ => unreachable!("pairs() admits only the allowed names"),
            }
        }
        Ok(list)
    }
}

/// A page size: 1 to [`MAX_LIMIT`].
pub(crate) fn limit(value: &str) -> Result<u64, FilterError> {
    value
        .parse()
        .ok()
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or_else(|| FilterError(format!("`limit` must be an integer from 1 to {MAX_LIMIT}")))
}

fn non_empty(name: &str, value: String) -> Result<String, FilterError> {
    if value.is_empty() {
        return Err(FilterError(format!("`{name}` must not be empty")));
    }
    Ok(value)
}

/// An RFC 3339 instant (`2026-11-29T09:00:00Z`, any offset).
pub(crate) fn instant(name: &str, value: &str) -> Result<DateTime<Utc>, FilterError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            FilterError(format!(
                "`{name}` must be an RFC 3339 instant, such as 2026-11-29T09:00:00Z"
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_round_trips_at_full_precision() {
        let cursor = Cursor {
            at: DateTime::from_timestamp_nanos(1_795_000_000_123_456_789),
            digest: [7; 32],
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Ok(cursor));
    }

    #[test]
    fn bad_cursors_are_refused() {
        for bad in [
            "",
            "x",
            "%%%",
            &URL_SAFE_NO_PAD.encode("1.zz"),
            &URL_SAFE_NO_PAD.encode("a.00"),
        ] {
            assert!(Cursor::decode(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn filters_parse_and_unknown_or_repeated_names_are_refused() {
        let q = ListQuery::parse(Some(
            "source=stripe&type=a%20b&status=dead&since=2026-11-29T09:00:00Z&limit=10",
        ))
        .unwrap();
        assert_eq!(q.filters.source.as_deref(), Some("stripe"));
        assert_eq!(q.filters.event_type.as_deref(), Some("a b"));
        assert_eq!(q.filters.status, Some(Status::Dead));
        assert_eq!(q.limit, 10);
        assert_eq!(ListQuery::parse(None).unwrap().limit, DEFAULT_LIMIT);
        let err = ListQuery::parse(Some("staus=dead")).unwrap_err();
        assert!(err.0.contains("unknown query parameter `staus`"), "{err}");
        assert!(ListQuery::parse(Some("source=a&source=b"))
            .unwrap_err()
            .0
            .contains("more than once"));
        for bad in [
            "status=done",
            "limit=0",
            "limit=501",
            "limit=x",
            "since=yesterday",
            "source=",
            "since=2026-11-29T10:00:00Z&until=2026-11-29T09:00:00Z",
        ] {
            assert!(ListQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
