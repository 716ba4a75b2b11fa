//! The one test harness. Every scenario file starts with `use crate::support::*;`.
//!
//! - [`db`]: a fresh database per test ([`TestDb`]) on each [`Backend`], and statements
//!   straight on it ([`query_row`], [`execute`]).
//! - [`app`]: the app in process, driven through Rocket's local client ([`TestApp`]), with
//!   the settings, secrets and row counts the scenarios share. Fast, and the only way to reach
//!   the fault handlers; but the local client frames nothing, so whatever depends on a socket
//!   (Content-Length, concurrency on connections) goes through [`process`].
//! - [`cli`]: the `idemhook` command in its own process ([`idemhook`]).
//! - [`fleet`]: several instances on one database, and deliveries spread over them.
//! - [`galera`]: the three-node Galera cluster, one test at a time ([`Cluster`]).
//! - [`nats`]: NATS servers the test starts, stops and kills, alone or as a three-node
//!   JetStream cluster ([`NatsNode`], [`NatsCluster`]), and a stream read back.
//! - [`forwarding`]: the binary with the admin token and a source that forwards ([`start`],
//!   [`fwd_config`]).
//! - [`ops`]: the admin API as an operator calls it ([`Ops`]), and the operator scenarios'
//!   server ([`operator_server`]).
//! - [`console`]: the console as a browser sees it ([`Browser`]), and a console test's world
//!   ([`Console`]).
//! - [`faults`]: handlers that fail, panic or block on demand (in process only).
//! - [`process`]: the real binary as a child process ([`Server`]), its one configuration
//!   ([`config`], [`ENV`]) and an HTTP client helper ([`post`]).
//! - [`socket`]: raw bytes on a fresh connection to it ([`raw`], [`request`]).
//! - [`rabbitmq`]: the machine's RabbitMQ, an exchange and queue of the test's own.
//! - [`proxy`]: a TCP proxy between the binary and its database server, to cut it off.
//! - [`signing`]: deliveries signed as GitHub and Shopify sign them.
//! - [`receiver`]: the user's app that forwarded events are delivered to ([`Receiver`]).
//! - [`collector`]: an OpenTelemetry collector (OTLP/HTTP) that keeps the spans it gets.
//!
//! The macros below run a scenario on each backend. A variant that cannot run is compiled as
//! ignored, with the reason (see `build.rs`), so it is reported as skipped, never as passed.

pub mod app;
pub mod cli;
pub mod collector;
pub mod console;
pub mod db;
pub mod faults;
pub mod fleet;
pub mod forwarding;
pub mod galera;
pub mod nats;
pub mod ops;
pub mod process;
pub mod proxy;
pub mod rabbitmq;
pub mod receiver;
pub mod signing;
pub mod socket;

pub use app::*;
pub use cli::*;
pub use collector::*;
pub use console::*;
pub use db::*;
pub use fleet::*;
pub use forwarding::*;
pub use galera::*;
pub use nats::*;
pub use ops::*;
pub use process::*;
pub use proxy::*;
pub use rabbitmq::*;
pub use receiver::*;
pub use signing::*;
pub use socket::*;

/// Runs each scenario (an `async fn(Backend)` in the calling module) once per backend: `mod
/// sqlite`, `mod postgres` and `mod mysql`, one test per scenario in each. A server variant
/// is ignored, with the variable to set, when its server was not configured at build time.
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario($crate::support::Backend::Sqlite).await
                }
            )*
        }
        $crate::support::on_server_backends!($($scenario),*);
    };
}

/// Like [`on_every_backend!`] for the scenarios that cannot happen on SQLite (two writers at
/// once, a database server that goes away): only `mod postgres` and `mod mysql`. A module can
/// hold one invocation of either macro; a file with both puts one in a nested module.
macro_rules! on_server_backends {
    ($($scenario:ident),* $(,)?) => {
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(idemhook_test_postgres),
                    ignore = "no database server: set IDEMHOOK_TEST_POSTGRES_URL"
                )]
                async fn $scenario() {
                    super::$scenario($crate::support::Backend::Postgres).await
                }
            )*
        }
        mod mysql {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                #[cfg_attr(
                    not(idemhook_test_mysql),
                    ignore = "no database server: set IDEMHOOK_TEST_MYSQL_URL"
                )]
                async fn $scenario() {
                    super::$scenario($crate::support::Backend::MySql).await
                }
            )*
        }
    };
}

pub(crate) use on_every_backend;
pub(crate) use on_server_backends;
