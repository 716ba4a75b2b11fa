//! `GET /metrics`: Prometheus text exposition (see `crate::metrics` for the list).

use std::sync::Arc;

use rocket::http::ContentType;
use rocket::{get, routes, Route, State};

use crate::engine::Engine;

pub fn routes() -> Vec<Route> {
    routes![metrics]
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "metrics", responses(
    (status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain"),
))]
#[get("/metrics")]
pub async fn metrics(engine: &State<Arc<Engine>>) -> (ContentType, String) {
    engine.export_gauges().await;
    let content_type = ContentType::new("text", "plain").with_params([("version", "0.0.4")]);
    (content_type, engine.metrics().render())
}
