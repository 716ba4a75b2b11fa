//! The `idemhook` server: configuration from Rocket.toml and the environment, then launch.

use tracing_subscriber::EnvFilter;

#[rocket::main]
async fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,rocket::server=warn")),
        )
        .init();
    match idemhook::App::new().rocket().launch().await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("idemhook stopped: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
