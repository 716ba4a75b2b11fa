//! Liveness (the process answers) and readiness (the database answers, its schema is
//! current, and on a Galera cluster the node is `Synced`). A load balancer should route on
//! readiness only. Readiness answers are shared for a second (see [`Readiness`]), so a flood
//! of probes cannot take the writers' connections.

use std::sync::Arc;
use std::time::{Duration, Instant};

use migration::{Migrator, MigratorTrait};
use rocket::http::Status;
use rocket::serde::json::{json, Json, Value};
use rocket::{get, routes, Route, State};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection, Statement};
use tokio::sync::Mutex;

use crate::engine::Engine;

pub fn routes() -> Vec<Route> {
    routes![live, ready]
}

/// The body of both probes (readiness adds `reason`, and on Galera `galera`).
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `live`, `ready` or `unavailable`.
    pub status: String,
}

/// The process is up.
#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, body = Health)))]
#[get("/health/live")]
pub fn live() -> Json<Value> {
    Json(json!({ "status": "live" }))
}

/// How long a readiness answer is reused.
const READY_TTL: Duration = Duration::from_secs(1);

/// The last readiness answer, shared by every probe. A probe that finds no fresh answer takes
/// the lock and checks the database while the others wait for its answer: however many probes
/// arrive, at most one connection of the pool (which the writers need) serves them, and at
/// most once a second.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<Option<(Instant, Status, Value)>>,
}

/// The database answers and the schema is current: route traffic here.
#[utoipa::path(get, path = "/health/ready", tag = "health", responses(
    (status = 200, body = Health),
    (status = 503, description = "The database is unreachable, or the schema is behind", body = Health),
))]
#[get("/health/ready")]
pub async fn ready(
    db: &State<DatabaseConnection>,
    readiness: &State<Readiness>,
    engine: &State<Arc<Engine>>,
) -> (Status, Json<Value>) {
    let mut last = readiness.last.lock().await;
    if let Some((at, status, body)) = last.as_ref() {
        if at.elapsed() < READY_TTL {
            return (*status, Json(body.clone()));
        }
    }
    engine.metrics().readiness_checks.inc();
    let (status, body) = check(db).await;
    *last = Some((Instant::now(), status, body.clone()));
    (status, Json(body))
}

async fn check(db: &DatabaseConnection) -> (Status, Value) {
    if let Err(e) = db.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return (
            Status::ServiceUnavailable,
            json!({ "status": "unavailable", "reason": "database unreachable" }),
        );
    }
    let galera = galera_node(db).await;
    if let Some((node, state)) = &galera {
        if state != "Synced" {
            return (
                Status::ServiceUnavailable,
                json!({
                    "status": "unavailable",
                    "reason": format!("galera node {node} is {state}, not Synced"),
                    "galera": { "node": node, "state": state },
                }),
            );
        }
    }
    match Migrator::get_pending_migrations(db).await {
        Ok(pending) if pending.is_empty() => {
            let mut body = json!({ "status": "ready" });
            if let Some((node, state)) = galera {
                body["galera"] = json!({ "node": node, "state": state });
            }
            (Status::Ok, body)
        }
        Ok(pending) => (
            Status::ServiceUnavailable,
            json!({
                "status": "unavailable",
                "reason": format!("{} migrations pending", pending.len())
            }),
        ),
        Err(e) => {
            tracing::warn!(error = %e, "readiness: cannot read the migration table");
            (
                Status::ServiceUnavailable,
                json!({ "status": "unavailable", "reason": "migration status unknown" }),
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
