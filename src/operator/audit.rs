//! The audit: who changed what, when, from where.
//!
//! - A change ([`Change`]) is recorded by the service call that makes it, **in the change's
//!   own transaction** (a replay's in the engine's): the row exists exactly when the change
//!   does. A change that fails (404, 409, 422, …) is recorded after, with that outcome.
//! - A change refused to a signed-in operator (403) is one row per attempt; sign-in and
//!   sign-out are rows of their own.
//! - Failed authentications prove no operator: they are counted per client address and
//!   written as one row per address and minute with a count (`routes::auth::guessing`), so
//!   traffic without a token cannot make one database write per request.
//!
//! Read newest first by id (`GET /audit`), filtered strictly like `/events`.

use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::filter::{instant, limit, pairs, FilterError, DEFAULT_LIMIT};
use crate::config::Role;
use crate::entities::audit::{self, Column};

/// What was done (or tried).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Replay,
    ForcedReplay,
    Redeliver,
    ReplayJob,
    RedriveJob,
    Pause,
    Resume,
    Discard,
    SignIn,
    SignOut,
    /// Wrong tokens from one address in one minute (`count` of them).
    AuthFailed,
}

impl Action {
    pub const ALL: [Action; 11] = [
        Action::Replay,
        Action::ForcedReplay,
        Action::Redeliver,
        Action::ReplayJob,
        Action::RedriveJob,
        Action::Pause,
        Action::Resume,
        Action::Discard,
        Action::SignIn,
        Action::SignOut,
        Action::AuthFailed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replay => "replay",
            Action::ForcedReplay => "forced_replay",
            Action::Redeliver => "redeliver",
            Action::ReplayJob => "replay_job",
            Action::RedriveJob => "redrive_job",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::Discard => "discard",
            Action::SignIn => "sign_in",
            Action::SignOut => "sign_out",
            Action::AuthFailed => "auth_failed",
        }
    }

    fn parse(s: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Who acted: the authenticated operator, their role, whom they say they act for, and the
/// client address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub operator: String,
    pub role: Role,
    pub on_behalf_of: Option<String>,
    pub client: Option<IpAddr>,
}

/// One change an operator asks for.
#[derive(Debug, Clone)]
pub struct Change {
    pub actor: Actor,
    pub action: Action,
    /// What it acts on: `<source>/<event id>`, `<source>/<destination>`, a job's kind.
    pub target: String,
    /// The request's parameters.
    pub params: Value,
}

impl Change {
    /// Its row, ended with `outcome` (`ok`, or the refusal: `forbidden`, `not_found`, …).
    pub fn row(&self, outcome: &str, at: DateTime<Utc>) -> audit::ActiveModel {
        audit::ActiveModel {
            at: Set(at),
            operator: Set(Some(self.actor.operator.clone())),
            role: Set(Some(self.actor.role.as_str().to_owned())),
            on_behalf_of: Set(self.actor.on_behalf_of.clone()),
            action: Set(self.action.as_str().to_owned()),
            target: Set(self.target.clone()),
            params: Set(self.params.to_string()),
            outcome: Set(outcome.to_owned()),
            client: Set(self.actor.client.map(|c| c.to_string())),
            count: Set(1),
            ..Default::default()
        }
    }

    /// Writes its row, in `db` (the change's own transaction, when it has one).
    pub async fn record(
        &self,
        db: &impl ConnectionTrait,
        outcome: &str,
        at: DateTime<Utc>,
    ) -> Result<(), DbErr> {
        audit::Entity::insert(self.row(outcome, at))
            .exec_without_returning(db)
            .await
            .map(|_| ())
    }
}

/// Failed authentications of one address (`None`: of addresses past the recorder's bound)
/// in one minute, for one row.
pub fn failures_row(
    client: Option<IpAddr>,
    credential: &str,
    count: u64,
    at: DateTime<Utc>,
) -> audit::ActiveModel {
    audit::ActiveModel {
        at: Set(at),
        operator: Set(None),
        role: Set(None),
        on_behalf_of: Set(None),
        action: Set(Action::AuthFailed.as_str().to_owned()),
        target: Set(credential.to_owned()),
        params: Set("{}".to_owned()),
        outcome: Set("unauthorized".to_owned()),
        client: Set(client.map(|c| c.to_string())),
        count: Set(i64::try_from(count).unwrap_or(i64::MAX)),
        ..Default::default()
    }
}

/// Writes failure rows in one statement.
pub async fn insert_failures(
    db: &impl ConnectionTrait,
    rows: impl IntoIterator<Item = audit::ActiveModel>,
) -> Result<(), DbErr> {
    audit::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

/// One audit row, as `GET /audit` answers it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntry {
    pub id: i64,
    /// RFC 3339, UTC.
    pub at: String,
    /// `null` for failed authentications (no operator proven).
    pub operator: Option<String>,
    pub role: Option<String>,
    /// The `Idemhook-Operator` note: whom the operator says they act for.
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub target: String,
    #[schema(value_type = Object)]
    pub params: Value,
    /// `ok`, or why not: `forbidden`, `not_found`, `conflict`, `not_applied`, `bad_request`,
    /// `unavailable`, `error`; `unauthorized` for failed authentications.
    pub outcome: String,
    pub client: Option<String>,
    /// 1, or the failures an address made in the minute.
    pub count: i64,
}

impl From<audit::Model> for AuditEntry {
    fn from(m: audit::Model) -> Self {
        AuditEntry {
            id: m.id,
            at: m.at.to_rfc3339_opts(SecondsFormat::Micros, true),
            operator: m.operator,
            role: m.role,
            on_behalf_of: m.on_behalf_of,
            action: m.action,
            target: m.target,
            params: serde_json::from_str(&m.params).unwrap_or(Value::Null),
            outcome: m.outcome,
            client: m.client,
            count: m.count,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// Pass as `cursor` for the next (older) page; `null` on the last.
    pub next_cursor: Option<String>,
}

/// `GET /audit`'s query: strict, like `/events`'s.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditQuery {
    pub operator: Option<String>,
    pub action: Option<Action>,
    /// Inclusive.
    pub since: Option<DateTime<Utc>>,
    /// Exclusive.
    pub until: Option<DateTime<Utc>>,
    pub limit: u64,
    /// Entries older than this id.
    pub before: Option<i64>,
}

pub const AUDIT_PARAMS: [&str; 6] = ["operator", "action", "since", "until", "limit", "cursor"];

impl AuditQuery {
    pub fn parse(query: Option<&str>) -> Result<AuditQuery, FilterError> {
        let mut q = AuditQuery {
            limit: DEFAULT_LIMIT,
            ..AuditQuery::default()
        };
        for (name, value) in pairs(query, &AUDIT_PARAMS)? {
            match name.as_str() {
                "operator" if crate::config::valid_destination_name(&value) => {
                    q.operator = Some(value)
                }
                "operator" => {
                    return Err(FilterError(
                        "`operator` is an operator's name: 1 to 64 of a-z, 0-9, '_' and '-'".into(),
                    ))
                }
                "action" => {
                    q.action = Some(Action::parse(&value).ok_or_else(|| {
                        let all: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                        FilterError(format!("`action` must be one of {}", all.join(", ")))
                    })?)
                }
                "since" => q.since = Some(instant("since", &value)?),
                "until" => q.until = Some(instant("until", &value)?),
                "limit" => q.limit = limit(&value)?,
                "cursor" => q.before = Some(decode_cursor(&value)?),
                _ => unreachable!("pairs() admits only the allowed names"),
            }
        }
        Ok(q)
    }
}

fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("a{id}"))
}

fn decode_cursor(s: &str) -> Result<i64, FilterError> {
    URL_SAFE_NO_PAD
        .decode(s)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_prefix('a').and_then(|n| n.parse::<i64>().ok()))
        .filter(|id| *id > 0)
        .ok_or_else(|| FilterError("`cursor` is not a cursor this API returned".into()))
}

/// One page of the audit, newest first.
pub async fn page(db: &impl ConnectionTrait, q: &AuditQuery) -> Result<AuditPage, DbErr> {
    let mut select = audit::Entity::find()
        .order_by_desc(Column::Id)
        .limit(q.limit + 1);
    if let Some(op) = &q.operator {
        select = select.filter(Column::Operator.eq(op.as_str()));
    }
    if let Some(action) = q.action {
        select = select.filter(Column::Action.eq(action.as_str()));
    }
    if let Some(since) = q.since {
        select = select.filter(Column::At.gte(since));
    }
    if let Some(until) = q.until {
        select = select.filter(Column::At.lt(until));
    }
    if let Some(before) = q.before {
        select = select.filter(Column::Id.lt(before));
    }
    let mut rows = select.all(db).await?;
    let limit = usize::try_from(q.limit).unwrap_or(usize::MAX);
    let next_cursor = (rows.len() > limit).then(|| {
        rows.truncate(limit);
        encode_cursor(rows[limit - 1].id)
    });
    Ok(AuditPage {
        entries: rows.into_iter().map(AuditEntry::from).collect(),
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_is_strict_and_the_cursor_round_trips() {
        let q = AuditQuery::parse(Some(
            "operator=alice&action=forced_replay&since=2026-12-01T00:00:00Z&limit=10",
        ))
        .unwrap();
        assert_eq!(q.operator.as_deref(), Some("alice"));
        assert_eq!(q.action, Some(Action::ForcedReplay));
        assert_eq!(q.limit, 10);
        assert_eq!(decode_cursor(&encode_cursor(42)), Ok(42));
        for bad in [
            "actor=alice",
            "action=delete",
            "operator=Alice",
            "limit=0",
            "since=yesterday",
            "cursor=xyz",
            "action=pause&action=resume",
        ] {
            assert!(AuditQuery::parse(Some(bad)).is_err(), "{bad}");
        }
    }
}
