//! Liveness (the process answers) and readiness (the database answers and its schema is
//! current). A load balancer should route on readiness only.

use migration::{Migrator, MigratorTrait};
use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, routes, Route, State};
use sea_orm::DatabaseConnection;

pub fn routes() -> Vec<Route> {
    routes![live, ready]
}

#[get("/health/live")]
fn live() -> Json<Value> {
    Json(json!({ "status": "live" }))
}

#[get("/health/ready")]
async fn ready(db: &State<DatabaseConnection>) -> (Status, Json<Value>) {
    if let Err(e) = db.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return (
            Status::ServiceUnavailable,
            Json(json!({ "status": "unavailable", "reason": "database unreachable" })),
        );
    }
    match Migrator::get_pending_migrations(db.inner()).await {
        Ok(pending) if pending.is_empty() => (Status::Ok, Json(json!({ "status": "ready" }))),
        Ok(pending) => (
            Status::ServiceUnavailable,
            Json(json!({
                "status": "unavailable",
                "reason": format!("{} migrations pending", pending.len())
            })),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot read the migration table");
            (
                Status::ServiceUnavailable,
                Json(json!({ "status": "unavailable", "reason": "migration status unknown" })),
            )
        }
    }
}
