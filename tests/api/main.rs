//! Integration tests: one binary, one harness ([`support`]), one file per scenario.
//!
//! Each test gets a fresh database: SQLite always; PostgreSQL and MariaDB when
//! `IDEMHOOK_TEST_POSTGRES_URL` / `IDEMHOOK_TEST_MYSQL_URL` were set at build time, and
//! reported as ignored, with the variable to set, when not (see `build.rs`). Logic runs in
//! process through Rocket's local client; what needs a socket or a process (framing,
//! concurrent connections, signals, crashes, logs, launch failures) runs the real binary.

mod support;

/// The admin API: disabled without a token, bearer-protected with one.
mod admin;
/// Concurrent deliveries of one event, on one instance and across two.
mod concurrency;
/// The console: sign-in, pages, CSRF, escaping (the browser half is tests/browser/).
mod console;
/// kill -9 mid-transaction, then a restart and the redelivery.
mod crash;
/// Handlers that fail or panic: rollback, audit, retry.
mod failures;
/// A flood past the shard queue bound.
mod flood;
/// Forwarding to the user's app: signed, retried, dead and redelivered, ordered, crash-safe.
mod forward;
/// Three instances on a three-node Galera cluster (slow).
mod galera;
/// Malformed and hostile requests over a raw socket.
mod hostile;
/// Inbox ids follow inserts, not commits: how to read the inbox without a gap.
mod inbox;
/// The basic contract: processed, duplicate, exact identity, bad requests.
mod ingest;
/// Bodies up to a source's limit (GitHub's 25 MiB), and the 413 past it.
mod large;
/// Launch-time refusals of a bad configuration, and the in-memory store.
mod launch;
/// A row locked elsewhere delays only its own event.
mod locks;
/// No secret, token or payload in the logs.
mod logs;
/// Duplicates with another body: counted on the event, or refused.
mod mismatch;
/// The sweeper, metrics, health and graceful shutdown.
mod operations;
/// Search, replay, redrive, jobs, the OpenAPI document and the CLI.
mod operator;
/// Named operators with roles, and the limits on guessing tokens.
mod operators;
/// A database outage through a proxy, and recovery.
mod outage;
/// Events that can never succeed, settled as rejected.
mod poison;
/// Each provider's verifier against its own library's signatures.
mod provider_vectors;
/// Signed deliveries end to end.
mod providers;
/// A captured signed delivery replayed under a new id, or its body under another type.
mod signed_replay;
/// The one-statement group commit against the transaction path and single events.
mod statement;
/// Three instances, 10,000 deliveries (slow).
mod storm;
/// OpenTelemetry traces exported to a real collector, and carried on to every consumer.
mod traces;
/// A database of the previous release migrated in place.
mod upgrade;
