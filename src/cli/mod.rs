//! The command line: `idemhook [serve]` runs the server (what `cargo run --release` does);
//! `idemhook migrate …` manages the schema of the configured database; the operator commands
//! (`events`, `replay`, `redrive`) call a running server's admin API ([`client`]).
//!
//! Exit codes: 0 success, 1 failure (the server refused, or could not be reached), 2 usage
//! (clap's own, for a wrong command line).

pub mod client;
pub mod migrate;
mod render;

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "idemhook", version, about = "Exactly-once webhook receiver")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve webhooks (the default), configured by Rocket.toml and the environment.
    Serve,
    /// Apply, undo or show the schema migrations of the configured database.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Find events on a running server.
    Events {
        #[command(subcommand)]
        action: EventsAction,
    },
    /// Re-run the handlers of a rejected or failed event (or, with --all, of every matching
    /// one, as a job).
    Replay(ReplayArgs),
    /// List the forwarding destinations, or pause or resume one.
    Destinations {
        #[command(subcommand)]
        action: DestinationsAction,
    },
    /// Reschedule every matching dead delivery, as a job, and follow it.
    Redrive {
        #[command(flatten)]
        filters: FilterArgs,
        #[command(flatten)]
        remote: Remote,
        /// Print the job and return at once instead of following it.
        #[arg(long)]
        no_wait: bool,
    },
    /// Who changed what: the audit, newest first.
    Audit(AuditArgs),
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only this operator's entries.
    #[arg(long)]
    pub operator: Option<String>,
    /// replay, forced_replay, redeliver, replay_job, redrive_job, pause, resume, discard,
    /// sign_in, sign_out or auth_failed.
    #[arg(long)]
    pub action: Option<String>,
    /// RFC 3339: entries at or after.
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339: entries before.
    #[arg(long)]
    pub until: Option<String>,
    /// Page size (1 to 500).
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// The `next_cursor` a previous page printed.
    #[arg(long)]
    pub cursor: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub remote: Remote,
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Undo the last applied migrations.
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// List the migrations and whether each is applied.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// Events, newest first.
    List {
        #[command(flatten)]
        filters: FilterArgs,
        /// processed, failed, rejected, delivery_pending, delivered or dead.
        #[arg(long)]
        status: Option<String>,
        /// Page size (1 to 500).
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// The `next_cursor` a previous page printed.
        #[arg(long)]
        cursor: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// One event: record, attempts, delivery, replays, payload.
    Show {
        source: String,
        event_type: String,
        event_id: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Subcommand)]
pub enum DestinationsAction {
    /// Every destination: its state, why it is paused, and its backlog.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        remote: Remote,
    },
    /// Stop every attempt to a destination, on every instance, until it is resumed.
    Pause {
        source: String,
        /// The destination (`forward`: the source's forward table).
        #[arg(default_value = "forward")]
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
    /// Let a paused destination's deliveries go.
    Resume {
        source: String,
        #[arg(default_value = "forward")]
        name: String,
        #[command(flatten)]
        remote: Remote,
    },
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// The event's source, type and id (omit with --all).
    #[arg(num_args = 3, value_names = ["SOURCE", "TYPE", "ID"], required_unless_present = "all")]
    pub key: Vec<String>,
    /// Replay an already processed event too: its handlers run again (dangerous for handlers
    /// that are not idempotent).
    #[arg(long, conflicts_with = "all")]
    pub force: bool,
    /// Replay every matching event (rejected by default; --status failed for failed ones).
    #[arg(long, conflicts_with = "key")]
    pub all: bool,
    /// With --all: rejected (default) or failed.
    #[arg(long, requires = "all")]
    pub status: Option<String>,
    #[command(flatten)]
    pub filters: FilterArgs,
    /// With --all: print the job and return at once.
    #[arg(long, requires = "all")]
    pub no_wait: bool,
    #[command(flatten)]
    pub remote: Remote,
}

/// The filters the API takes (see `GET /events`).
#[derive(Debug, Args, Default)]
pub struct FilterArgs {
    #[arg(long)]
    pub source: Option<String>,
    #[arg(long = "type")]
    pub event_type: Option<String>,
    /// RFC 3339, e.g. 2026-11-29T09:00:00Z.
    #[arg(long)]
    pub since: Option<String>,
    /// RFC 3339.
    #[arg(long)]
    pub until: Option<String>,
    /// Only this destination's deliveries (with a delivery status, or for `redrive`).
    #[arg(long)]
    pub destination: Option<String>,
}

/// Where the server is. The token is read from `IDEMHOOK_TOKEN` or `IDEMHOOK_ADMIN_TOKEN`
/// only, never from the command line, where other users of the machine could read it.
#[derive(Debug, Args)]
pub struct Remote {
    /// The server's base URL.
    #[arg(long, env = "IDEMHOOK_URL", default_value = "http://127.0.0.1:8000")]
    pub url: String,
}

/// A command's failure: what is printed, and exit code 1.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Failure(pub String);

/// Runs an operator or migrate command (not `serve`).
pub async fn run(command: Command) -> ExitCode {
    let result = match command {
        Command::Serve => Ok(()),
        Command::Migrate { action } => migrate::run(action).await,
        Command::Events { action } => client::events(action).await,
        Command::Replay(args) => client::replay(args).await,
        Command::Destinations { action } => client::destinations(action).await,
        Command::Redrive {
            filters,
            remote,
            no_wait,
        } => client::redrive(filters, remote, no_wait).await,
        Command::Audit(args) => client::audit(args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
