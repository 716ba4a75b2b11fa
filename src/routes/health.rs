//! Liveness (the process answers) and readiness (the database answers, its schema is
//! current, and on a Galera cluster the node is `Synced`). A load balancer should route on
//! readiness only.

use migration::{Migrator, MigratorTrait};
use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, routes, Route, State};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};

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
    let galera = galera_node(db).await;
    if let Some((node, state)) = &galera {
        if state != "Synced" {
            return (
                Status::ServiceUnavailable,
                Json(json!({
                    "status": "unavailable",
                    "reason": format!("galera node {node} is {state}, not Synced"),
                    "galera": { "node": node, "state": state },
                })),
            );
        }
    }
    match Migrator::get_pending_migrations(db.inner()).await {
        Ok(pending) if pending.is_empty() => {
            let mut body = json!({ "status": "ready" });
            if let Some((node, state)) = galera {
                body["galera"] = json!({ "node": node, "state": state });
            }
            (Status::Ok, Json(body))
        }
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

/// On a Galera node, its name and local state (`Synced`, `Donor/Desynced`, `Joining`…); `None`
/// on anything that is not Galera. A node that is not `Synced` refuses or stalls queries, so
/// an instance in front of it is not ready even though the server answers.
async fn galera_node(db: &DatabaseConnection) -> Option<(String, String)> {
    if db.get_database_backend() != DatabaseBackend::MySql {
        return None;
    }
    let row = db
        .query_one_raw(Statement::from_string(
            DatabaseBackend::MySql,
            "SELECT @@wsrep_node_name, (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS \
             WHERE VARIABLE_NAME = 'WSREP_LOCAL_STATE_COMMENT') AS state, @@wsrep_on",
        ))
        .await
        .ok()??;
    let on: i64 = row.try_get_by_index(2).ok()?;
    if on == 0 {
        return None;
    }
    let node: String = row.try_get_by_index(0).unwrap_or_default();
    let state: String = row
        .try_get_by_index(1)
        .unwrap_or_else(|_| "unknown".to_owned());
    Some((node, state))
}
