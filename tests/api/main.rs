//! Integration tests: the real Rocket app, driven through Rocket's local client, on a fresh
//! database per test (SQLite always; PostgreSQL and MariaDB when their URLs are set).

mod helpers;
mod process;
mod proxy;
mod support;

mod admin;
mod concurrency;
mod failures;
mod galera;
mod ingest;
mod launch;
mod operations;
mod providers;
mod reliability;
