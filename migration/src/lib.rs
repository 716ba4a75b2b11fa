//! The schema of idemhook, as SeaORM migrations.
//!
//! The table that carries the exactly-once guarantee is `processed_events`: its primary key is
//! the SHA-256 of the event's (source, type, id). Keying by a fixed-size digest, not by the raw
//! strings, does two things at once: the key compares exact bytes on every backend (MySQL's
//! default collations are case-insensitive and pad spaces, a digest has no collation), and the
//! index stays 32 bytes wide however long the ids are (InnoDB caps an index key at 3072 bytes).
//!
//! Every migration has a real `down()`; `cargo run -p migration -- down` undoes them in order.

pub use sea_orm_migration::prelude::*;

mod columns;
pub mod limits;
mod m20261122_000001_create_events;
mod m20261122_000002_create_business;
mod m20261123_000001_signed_key;
mod m20261123_000002_rejections;
mod m20261123_000003_attempt_token;
mod m20261123_000004_outbox;
mod m20261129_000001_operator;
mod m20261129_000002_settled_deliveries;
mod m20261202_000001_typed_signed_key;
mod m20261202_000002_payload_mismatches;
mod m20261205_000001_destinations;
mod m20261206_000001_fan_out;
mod m20261207_000001_delivery_round;
mod m20261208_000001_audit;
mod m20261209_000001_delivery_trace;
mod m20261210_000001_lean_indexes;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_create_events::Migration),
            Box::new(m20261122_000002_create_business::Migration),
            Box::new(m20261123_000001_signed_key::Migration),
            Box::new(m20261123_000002_rejections::Migration),
            Box::new(m20261123_000003_attempt_token::Migration),
            Box::new(m20261123_000004_outbox::Migration),
            Box::new(m20261129_000001_operator::Migration),
            Box::new(m20261129_000002_settled_deliveries::Migration),
            Box::new(m20261202_000001_typed_signed_key::Migration),
            Box::new(m20261202_000002_payload_mismatches::Migration),
            Box::new(m20261205_000001_destinations::Migration),
            Box::new(m20261206_000001_fan_out::Migration),
            Box::new(m20261207_000001_delivery_round::Migration),
            Box::new(m20261208_000001_audit::Migration),
            Box::new(m20261209_000001_delivery_trace::Migration),
            Box::new(m20261210_000001_lean_indexes::Migration),
        ]
    }
}
