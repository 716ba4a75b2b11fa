//! The `idemhook` binary: `serve` (the default) launches the server; the other subcommands
//! (`migrate`, `events`, `replay`, `redrive`) are in `idemhook::cli`.

use clap::Parser;
use idemhook::cli::{Cli, Command};
use idemhook::config::{LogFormat, Settings};

/// mimalloc instead of the system allocator: every request allocates and frees a few dozen
/// small blocks (headers, the parsed body, the answer), and a long-running server with a
/// 100,000-key cache fragments glibc's arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[rocket::main]
async fn main() -> std::process::ExitCode {
    // A wrong command line exits 2 with clap's usage message.
    let cli = Cli::parse();
    match cli.command {
        None | Some(Command::Serve) => serve().await,
        Some(command) => idemhook::cli::run(command).await,
    }
}

async fn serve() -> std::process::ExitCode {
    // The log format is read before anything else, so even a refused config is logged in it.
    let format = Settings::from_figment(&rocket::Config::figment())
        .map(|s| s.log_format)
        .unwrap_or(LogFormat::Text);
    // Held to the end: dropping it flushes the lines still queued for stdout.
    let _log_writer = idemhook::telemetry::init(format);
    match idemhook::App::new().rocket().launch().await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("idemhook stopped: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
