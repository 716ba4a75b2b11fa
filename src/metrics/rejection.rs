//! Why a delivery was refused: the `reason` label of `idemhook_events_rejected_total`.

/// Why a delivery was refused before it reached a shard, or by the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    BadRequest,
    Unauthorized,
    TooLarge,
    UnknownSource,
    QueueFull,
    Unavailable,
    Timeout,
    OverBudget,
    /// A duplicate whose body differs, on a source with `on_payload_mismatch = "reject"`.
    PayloadMismatch,
}

impl Rejection {
    pub(super) const ALL: [Rejection; 9] = [
        Rejection::BadRequest,
        Rejection::Unauthorized,
        Rejection::TooLarge,
        Rejection::UnknownSource,
        Rejection::QueueFull,
        Rejection::Unavailable,
        Rejection::Timeout,
        Rejection::OverBudget,
        Rejection::PayloadMismatch,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            Rejection::BadRequest => "bad_request",
            Rejection::Unauthorized => "unauthorized",
            Rejection::TooLarge => "too_large",
            Rejection::UnknownSource => "unknown_source",
            Rejection::QueueFull => "queue_full",
            Rejection::Unavailable => "unavailable",
            Rejection::Timeout => "timeout",
            Rejection::OverBudget => "over_budget",
            Rejection::PayloadMismatch => "payload_mismatch",
        }
    }
}
