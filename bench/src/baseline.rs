//! Rocket's own limit: a bare route that reads the body, parses it as JSON and answers 200.
//! Whatever idemhook answers from its cache costs on top of this.

use rocket::data::{Data, ToByteUnit};
use rocket::http::Status;
use rocket::{post, routes, Config};

#[derive(clap::Args)]
pub struct BaselineArgs {
    #[arg(long, default_value_t = 8001)]
    port: u16,
}

#[post("/webhooks/<_source>", data = "<body>")]
async fn ingest(_source: &str, body: Data<'_>) -> (Status, &'static str) {
    match body.open(1.mebibytes()).into_bytes().await {
        Ok(bytes) if bytes.is_complete() => {
            match serde_json::from_slice::<serde_json::Value>(&bytes) {
                Ok(_) => (Status::Ok, r#"{"status":"ok"}"#),
                Err(_) => (Status::BadRequest, r#"{"error":"not json"}"#),
            }
        }
        _ => (Status::PayloadTooLarge, r#"{"error":"too large"}"#),
    }
}

pub async fn serve(args: BaselineArgs) -> Result<(), String> {
    let config = Config {
        port: args.port,
        address: std::net::Ipv4Addr::LOCALHOST.into(),
        log_level: rocket::config::LogLevel::Off,
        ..Config::release_default()
    };
    rocket::custom(config)
        .mount("/", routes![ingest])
        .launch()
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}
