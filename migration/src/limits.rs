//! The widest values the schema stores, in bytes. The columns are declared with these, and
//! idemhook refuses a longer value before it reaches the database (with a 400 naming the
//! part, or a launch error for a source name), so a value that passed the check always fits
//! and every backend gives the same answer: MySQL would otherwise reject or truncate it,
//! PostgreSQL and SQLite store it whole.
//!
//! The migrations read these too. A migration that has run is history, so changing a value
//! here takes a new migration that alters the columns, not an edit of the old ones.

/// A source name (the `<source>` of `/webhooks/<source>`).
pub const MAX_SOURCE_BYTES: usize = 255;
/// An event type or an event id.
pub const MAX_KEY_PART_BYTES: usize = 1024;
/// An order id of the reference `payments` handler.
pub const MAX_ORDER_ID_BYTES: usize = 255;
/// A currency code of the reference `payments` handler.
pub const MAX_CURRENCY_BYTES: usize = 16;

/// `max` as a column width.
pub(crate) const fn width(max: usize) -> u32 {
    max as u32
}
