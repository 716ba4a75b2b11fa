//! SeaORM entities, one per table. Derives only: the logic that writes them lives in `engine`
//! (the dedupe record and the audit) and in `handlers` (business tables).
//!
//! Digests are stored as raw 32-byte binaries; the API renders them as lowercase hex.

pub mod attempt;
pub mod audit;
pub mod delivery;
pub mod delivery_body;
pub mod destination;
pub mod event_payload;
pub mod failed_attempt;
pub mod inbox;
pub mod job;
pub mod order;
pub mod payment;
pub mod processed_event;
pub mod replay;
