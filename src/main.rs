//! The `idemhook` server: configuration from Rocket.toml and the environment, then launch.

use idemhook::config::{LogFormat, Settings};

/// mimalloc instead of the system allocator: every request allocates and frees a few dozen
/// small blocks (headers, the parsed body, the answer), and a long-running server with a
/// 100,000-key cache fragments glibc's arenas.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[rocket::main]
async fn main() -> std::process::ExitCode {
    // The log format is read before anything else, so even a refused config is logged in it.
    let format = Settings::from_figment(&rocket::Config::figment())
        .map(|s| s.log_format)
        .unwrap_or(LogFormat::Text);
    idemhook::telemetry::init(format);
    match idemhook::App::new().rocket().launch().await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("idemhook stopped: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
