//! Column types that must mean the same thing on SQLite, PostgreSQL and MySQL/MariaDB.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DatabaseBackend;

/// Text compared as exact bytes. On MySQL/MariaDB a `VARCHAR` would take the database's default
/// collation, which is case-insensitive and pads trailing spaces (`'x' = 'X '`), so it is stored
/// as `VARBINARY`; PostgreSQL's `text` and SQLite's default `BINARY` collation already compare
/// bytes.
pub fn exact_text<T: IntoIden>(backend: DatabaseBackend, name: T, max_bytes: u32) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    match backend {
        DatabaseBackend::MySql => col.var_binary(max_bytes),
        _ => col.text(),
    };
    col.not_null();
    col
}

/// A 32-byte SHA-256 digest.
pub fn digest<T: IntoIden>(name: T) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    col.binary_len(32).not_null();
    col
}

/// A UTC instant with sub-second precision. MySQL's `TIMESTAMP` stops in 2038 and converts
/// through the session time zone, so MySQL gets `DATETIME(6)` holding UTC; the others get
/// their zone-aware type.
pub fn utc_time<T: IntoIden>(backend: DatabaseBackend, name: T) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    match backend {
        DatabaseBackend::MySql => col.custom(Alias::new("DATETIME(6)")),
        _ => col.timestamp_with_time_zone(),
    };
    col.not_null();
    col
}

/// An opaque payload up to the body limit. MySQL's `BLOB` stops at 64 KiB, so it gets
/// `LONGBLOB`.
pub fn payload<T: IntoIden>(backend: DatabaseBackend, name: T) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    match backend {
        DatabaseBackend::MySql => col.custom(Alias::new("LONGBLOB")),
        _ => col.blob(),
    };
    col.not_null();
    col
}

/// [`utc_time`] that may be absent (a lease not held, a delivery not yet made).
pub fn utc_time_null<T: IntoIden>(backend: DatabaseBackend, name: T) -> ColumnDef {
    let mut col = ColumnDef::new(name);
    match backend {
        DatabaseBackend::MySql => col.custom(Alias::new("DATETIME(6)")),
        _ => col.timestamp_with_time_zone(),
    };
    col.null();
    col
}
