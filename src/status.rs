//! Every state a row is stored in, typed: an event's ([`EventStatus`]), a delivery's
//! ([`DeliveryStatus`]), a history entry's ([`AttemptOutcome`]), an operator job's
//! ([`JobStatus`]) and a paused destination's reason ([`PauseReason`]).
//!
//! A leaf: it imports nothing of ours, and the entities, the engine, forwarding, the operator
//! service, the sweeper, the filters and the console all name states through it. The stored
//! strings are the `string_value`s below and nowhere else (apart from the migrations, which
//! write them into partial indexes): a typo in a state is a compile error, not a query that
//! silently matches nothing. They are also the strings the API answers with.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

/// What became of an event (`processed_events.status`, `replays.previous_status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Its handlers committed.
    #[sea_orm(string_value = "processed")]
    Processed,
    /// A handler refused it for good (with a reason, and nothing else written).
    #[sea_orm(string_value = "rejected")]
    Rejected,
    /// Attempted, never committed: its attempts are in `failed_attempts`. Never the status of
    /// a `processed_events` row (a row there means settled); a replay's previous status.
    #[sea_orm(string_value = "failed")]
    Failed,
}

/// Where an event's delivery stands (`deliveries.status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting for its next attempt (or leased by a worker making it).
    #[sea_orm(string_value = "pending")]
    Pending,
    /// The app answered 2xx.
    #[sea_orm(string_value = "delivered")]
    Delivered,
    /// Out of attempts: kept, and redeliverable by an operator.
    #[sea_orm(string_value = "dead")]
    Dead,
}

/// How an attempt that did not settle its event ended (`attempts.outcome`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// A handler failed; the transaction rolled back.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// A delivery failed and will be tried again.
    #[sea_orm(string_value = "retry")]
    Retry,
    /// A delivery failed its last attempt.
    #[sea_orm(string_value = "dead")]
    Dead,
}

/// Why a destination is paused (`destinations.paused_reason`; no reason: not paused).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum PauseReason {
    /// An operator paused it; only an operator resumes it.
    #[sea_orm(string_value = "operator")]
    Operator,
    /// The circuit breaker: too many failed attempts in a row. A probe's 2xx resumes it.
    #[sea_orm(string_value = "failures")]
    Failures,
    /// The app answered `410 Gone`: the endpoint is gone. Only an operator resumes it.
    #[sea_orm(string_value = "gone")]
    Gone,
    /// The destination is set up wrong (a broker's stream is missing or does not capture
    /// its subject): only an operator resumes it, once it is fixed.
    #[sea_orm(string_value = "misconfigured")]
    Misconfigured,
}

/// Where an operator's bulk job stands (`jobs.status`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum, Serialize, Deserialize,
)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::None)")]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Started and not finished; its lease says which instance runs it.
    #[sea_orm(string_value = "running")]
    Running,
    /// Went through everything it matched.
    #[sea_orm(string_value = "done")]
    Done,
    /// Stopped on an error it could not get past.
    #[sea_orm(string_value = "failed")]
    Failed,
}

/// The stored string of each state, for the places that write it into SQL text (a partial
/// index is used only when the query's own text implies its predicate) or print it.
macro_rules! as_str {
    ($($ty:ty { $($variant:ident => $s:literal),* })*) => {$(
        impl $ty {
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $s),* }
            }
        }

        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    )*};
}

as_str! {
    EventStatus { Processed => "processed", Rejected => "rejected", Failed => "failed" }
    DeliveryStatus { Pending => "pending", Delivered => "delivered", Dead => "dead" }
    AttemptOutcome { Failed => "failed", Retry => "retry", Dead => "dead" }
    JobStatus { Running => "running", Done => "done", Failed => "failed" }
    PauseReason { Operator => "operator", Failures => "failures", Gone => "gone", Misconfigured => "misconfigured" }
}

#[cfg(test)]
mod tests {
    use sea_orm::{ActiveEnum, Iterable};

    use super::*;

    /// `as_str`, the stored value and the JSON answer are one string per state.
    fn agree<T>()
    where
        T: ActiveEnum<Value = String> + Iterable + Serialize + Copy + std::fmt::Display,
    {
        for state in T::iter() {
            let stored = state.to_value();
            assert_eq!(state.to_string(), stored);
            assert_eq!(serde_json::to_value(state).unwrap(), stored.as_str());
            assert!(T::try_from_value(&stored).is_ok());
        }
    }

    #[test]
    fn each_state_has_one_string() {
        agree::<EventStatus>();
        agree::<DeliveryStatus>();
        agree::<AttemptOutcome>();
        agree::<JobStatus>();
        agree::<PauseReason>();
    }

    /// The values rows already hold: renaming a variant's string would orphan them.
    #[test]
    fn stored_values_are_those_of_earlier_releases() {
        let stored = |s: &[String]| s.join(",");
        assert_eq!(
            stored(
                &EventStatus::iter()
                    .map(|s| s.to_value())
                    .collect::<Vec<_>>()
            ),
            "processed,rejected,failed"
        );
        assert_eq!(
            stored(
                &DeliveryStatus::iter()
                    .map(|s| s.to_value())
                    .collect::<Vec<_>>()
            ),
            "pending,delivered,dead"
        );
        assert_eq!(
            stored(&JobStatus::iter().map(|s| s.to_value()).collect::<Vec<_>>()),
            "running,done,failed"
        );
    }
}
