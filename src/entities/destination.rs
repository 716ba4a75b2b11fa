//! A destination's fleet-wide state (see `forward::brakes`): one row per (source, destination),
//! written when first needed.

use sea_orm::entity::prelude::*;

use crate::status::PauseReason;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "destinations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub source: String,
    /// The destination's name (`forward` for a source's forward table).
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// No attempt to this destination starts before then, on any instance: its app answered
    /// a 429 (or a 503 with `Retry-After`).
    pub hold_until: Option<DateTimeUtc>,
    /// Set while the destination is paused: no attempt to it starts, its rows stay pending.
    pub paused_reason: Option<PauseReason>,
    pub paused_at: Option<DateTimeUtc>,
    /// Failed attempts in a row, across every instance (a 2xx resets it): the breaker's count.
    pub consecutive_failures: i64,
    /// While paused by failures: when one instance may try one due delivery (a probe).
    pub next_probe_at: Option<DateTimeUtc>,
    /// The rate limit's bucket: tokens left as of `refilled_at` (`rate_per_sec` a second,
    /// up to one second's worth).
    pub tokens: Option<f64>,
    pub refilled_at: Option<DateTimeUtc>,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
