//! The `idemhook` server: configuration from Rocket.toml and the environment, then launch.

use idemhook::config::{LogFormat, Settings};

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
