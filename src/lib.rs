//! idemhook: a webhook receiver that applies every event exactly once.
//!
//! Providers deliver at least once: they retry on timeouts, on errors, on network faults, and
//! sometimes the same event reaches two instances at the same moment. idemhook turns that
//! into exactly-once *effects*: the event's dedupe record and every write its handlers make
//! commit in one database transaction, and the record's unique key refuses a second commit.
//!
//! # One webhook, from the socket to the commit
//!
//! 1. [`routes::webhooks`] reads the raw body (bounded by `limits.webhook`) and resolves the
//!    source named in the URL ([`providers::sources`]).
//! 2. [`providers`] verify the signature and extract the event type and id (generic: headers,
//!    then JSON pointers, then the payload's SHA-256).
//! 3. [`event::key`] builds the exact-bytes key (source, type, id) and its digest.
//! 4. [`engine::Engine::cached`] answers a duplicate whose key the [`engine::cache`] holds;
//!    otherwise [`engine::Engine::submit`] routes the [`event::Event`] to the shard actor that
//!    owns its digest ([`engine`]'s `shard`), which keeps each key's deliveries in order.
//! 5. The writers commit new events, several at once under load: [`engine::store`] inserts the
//!    dedupe row, runs the [`handlers`] in the same transaction, and commits.
//! 6. [`routes::error`] maps every failure to one HTTP answer and one metric; nothing but a commit is
//!    a 200 `processed`.
//!
//! Beside the flow: [`config`] (Rocket.toml, validated at launch), [`db`] (connection and
//! migrations), [`sweeper`] (retention), [`metrics`], [`telemetry`] (logs), [`clock`] and
//! [`entities`] (the tables).
//!
//! The modules form a tree: [`event`] is the leaf every stage shares; [`handlers`] read events;
//! the [`engine`] runs handlers; [`routes`] drive the engine. Nothing imports back up.
//!
//! # Building an app
//!
//! [`App`] builds the Rocket instance; `main.rs` only launches it. A library user adds their
//! own handlers with [`App::handler`] and names them in a source's `handlers` list.

pub mod activity;
pub mod budget;
pub mod cli;
pub mod clock;
pub mod config;
pub mod db;
pub mod engine;
pub mod entities;
pub mod event;
pub mod forward;
pub mod handlers;
pub mod metrics;
pub mod operator;
pub mod providers;
pub mod routes;
pub mod status;
pub mod sweeper;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

use clock::Clock;
use config::{Environment, Settings, IN_MEMORY_DATABASE_URL};
use engine::{Engine, EngineConfig};
use handlers::{Handler, Registry};
use metrics::Metrics;
use providers::Sources;
use routes::auth::AdminToken;
use sweeper::{Sweeper, SweeperConfig, SweeperTask};

pub use event::Event;
pub use handlers::HandlerError;

/// Builder for the idemhook Rocket application.
pub struct App {
    figment: Figment,
    env: Environment,
    /// The library user's handlers; the built-in ones are added at launch, with the clock.
    registry: Registry,
    clock: Clock,
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// Configuration from Rocket.toml and `ROCKET_*`, environment from the process, and the
    /// built-in handlers.
    pub fn new() -> Self {
        Self {
            figment: rocket::Config::figment(),
            env: Environment::from_process(),
            registry: Registry::empty(),
            clock: Clock::system(),
        }
    }

    /// Replaces the wall clock (tests age records with it).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    pub fn figment(mut self, figment: Figment) -> Self {
        self.figment = figment;
        self
    }

    pub fn environment(mut self, env: Environment) -> Self {
        self.env = env;
        self
    }

    /// Registers a handler under `name`, for sources to list in `handlers`.
    pub fn handler(mut self, name: &str, handler: impl Handler) -> Self {
        self.registry = self.registry.with(name, handler);
        self
    }

    pub fn rocket(self) -> Rocket<Build> {
        let App {
            figment,
            env,
            registry,
            clock,
        } = self;
        let registry = Registry::builtin(&clock).extend(registry);
        rocket::custom(figment)
            .attach(AdHoc::try_on_ignite("idemhook", move |rocket| async move {
                match ignite(&rocket, &env, &registry, clock).await {
                    Ok(state) => Ok(state.manage(rocket)),
                    Err(msg) => {
                        tracing::error!("idemhook cannot start: {msg}");
                        Err(rocket)
                    }
                }
            }))
            .attach(AdHoc::on_shutdown("drain shards", |rocket| {
                Box::pin(async move { shutdown(rocket).await })
            }))
            .mount("/", routes::all())
            .register("/", routes::catchers())
    }
}

/// Everything the routes need, built once at launch.
struct AppState {
    settings: Settings,
    db: sea_orm::DatabaseConnection,
    engine: Arc<Engine>,
    sources: Arc<Sources>,
    admin_token: AdminToken,
    clock: Clock,
    /// Rocket state so that it lives, and stops, with the app.
    sweeper: SweeperTask,
    forwarder: Forwarding,
    jobs: operator::runner::JobRunnerTask,
    operator: operator::Operator,
    activity: Arc<activity::Activity>,
    activity_task: activity::ActivityTask,
}

/// The delivery worker, when a source forwards (Rocket state, stopped at shutdown).
struct Forwarding(Option<forward::ForwarderTask>);

impl AppState {
    fn manage(self, rocket: Rocket<Build>) -> Rocket<Build> {
        let budget = budget::Budget::new(self.settings.inflight_budget_mib);
        rocket
            .manage(budget)
            .manage(self.settings)
            .manage(self.db)
            .manage(self.engine)
            .manage(self.sources)
            .manage(self.admin_token)
            .manage(self.clock)
            .manage(self.sweeper)
            .manage(self.forwarder)
            .manage(self.jobs)
            .manage(self.operator)
            .manage(self.activity)
            .manage(self.activity_task)
            .manage(routes::health::Readiness::default())
    }
}

/// On SIGTERM/SIGINT Rocket stops accepting connections and runs this: every event already
/// accepted commits (or fails) and is answered before the shards stop.
async fn shutdown(rocket: &Rocket<rocket::Orbit>) {
    if let Some(sweeper) = rocket.state::<SweeperTask>() {
        sweeper.stop();
    }
    if let Some(jobs) = rocket.state::<operator::runner::JobRunnerTask>() {
        jobs.stop();
    }
    let (Some(engine), Some(settings)) =
        (rocket.state::<Arc<Engine>>(), rocket.state::<Settings>())
    else {
        return;
    };
    let queued = engine.in_flight();
    tracing::info!(queued, "shutting down: draining the shards");
    let left = engine
        .drain(Duration::from_secs(settings.shutdown_grace_secs))
        .await;
    // After the shards: every event they committed is in the outbox for whichever instance
    // delivers it next.
    if let Some(Forwarding(Some(forwarder))) = rocket.state::<Forwarding>() {
        forwarder.stop().await;
    }
    if left == 0 {
        tracing::info!("shards drained; every accepted event was answered");
    } else {
        tracing::warn!(
            left,
            "shutdown grace ran out with events in flight; they were not committed and their \
             providers will retry"
        );
    }
}

/// Rocket's `limits.webhook`: every source's body limit unless its provider's default or its
/// own `max_body` says otherwise.
fn webhook_limit(rocket: &Rocket<Build>) -> u64 {
    rocket
        .figment()
        .extract_inner::<rocket::data::Limits>("limits")
        .ok()
        .and_then(|limits| limits.get("webhook"))
        .map_or(routes::webhooks::DEFAULT_BODY_LIMIT, |limit| limit.as_u64())
}

async fn ignite(
    rocket: &Rocket<Build>,
    env: &Environment,
    registry: &Registry,
    clock: Clock,
) -> Result<AppState, String> {
    let settings = Settings::from_figment(rocket.figment()).map_err(|e| e.to_string())?;
    settings.validate().map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new());
    // `forward` needs each source's ordering pointer, so it is built with the settings.
    let wake = forward::Wake::default();
    let registry = registry.clone().with(
        config::FORWARD_HANDLER,
        forward::Forward::new(&settings, clock.clone(), wake.clone()),
    );
    let mut sources = Sources::build(&settings, &registry, env, &metrics)?;
    let mut targets = forward::targets(&settings, env)?;
    let url = settings.database_url(env).map_err(|e| e.to_string())?;
    if url == IN_MEMORY_DATABASE_URL {
        tracing::warn!(
            "IDEMPOTENCY_STORE=in-memory: dedupe records live in memory and are LOST on restart; \
             a redelivery after a restart will be processed again"
        );
    }
    let db = db::connect(&url, &settings)
        .await
        .map_err(|e| format!("{e} (database: {})", db::redact(&url)))?;
    db::migrate(&url, &db).await.map_err(|e| e.to_string())?;
    tracing::info!(database = %db::redact(&url), shards = settings.shards, "database ready");
    let max_statement = db::max_statement_bytes(&db)
        .await
        .map_err(|e| format!("cannot read the database's max_allowed_packet: {e}"))?;
    let storable = providers::body_limit::storable(max_statement);
    let largest_body = sources.limit_bodies(&settings, webhook_limit(rocket), storable)?;
    budget::Budget::check(settings.inflight_budget_mib, largest_body)?;
    let max_body = |name: &str| sources.get(name).map_or(largest_body, |s| s.max_body);
    forward::bound_slots(&mut targets, max_body, settings.forward_budget_mib)?;
    let engine = Engine::start(
        EngineConfig {
            shards: settings.shards,
            shard_queue: settings.shard_queue,
            cache_capacity: settings.cache_capacity,
            cache_ttl: Duration::from_secs(u64::from(settings.retention_days) * 86_400),
            max_retries: settings.max_retries,
            max_batch: settings.max_batch,
            max_batch_bytes: storable,
            writers: settings.writers,
            bounds: engine::store::Bounds {
                limits: db::per_transaction_limits(&url, &settings),
                statement: Duration::from_secs(settings.db_timeout_secs),
                handlers: Duration::from_secs(settings.handler_timeout_secs),
            },
        },
        db.clone(),
        clock.clone(),
        metrics.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let forwarder = if targets.is_empty() || !settings.forward_worker {
        None
    } else {
        let forward_metrics = forward::metrics::ForwardMetrics::new(metrics.registry());
        let worker = forward::Forwarder::new(
            db.clone(),
            targets,
            clock.clone(),
            forward_metrics,
            Duration::from_millis(settings.forward_poll_ms),
            wake,
        );
        Some(worker.spawn(Duration::from_secs(settings.shutdown_grace_secs)))
    };
    let sweeper = Sweeper::new(
        db.clone(),
        engine.cache().clone(),
        clock.clone(),
        metrics,
        SweeperConfig {
            retention_days: settings.retention_days,
            inbox_retention_days: settings.inbox_retention_days,
            batch: settings.sweep_batch,
            pause: Duration::from_millis(settings.sweep_pause_ms),
            interval: Duration::from_secs(settings.sweep_interval_secs),
        },
    )
    .spawn();
    let engine = Arc::new(engine);
    let sources = Arc::new(sources);
    let operator = operator::Operator::new(
        db.clone(),
        db::per_transaction_limits(&url, &settings),
        engine.clone(),
        sources.clone(),
        clock.clone(),
    );
    let jobs = operator::runner::JobRunner {
        operator: operator.clone(),
    }
    .spawn();
    let admin_token = AdminToken(
        env.get("IDEMHOOK_ADMIN_TOKEN")
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
    );
    let activity = Arc::new(activity::Activity::new(&sources, clock.clone()));
    let activity_task = activity.clone().spawn();
    Ok(AppState {
        settings,
        db,
        engine,
        sources,
        admin_token,
        clock,
        sweeper,
        forwarder: Forwarding(forwarder),
        jobs,
        operator,
        activity,
        activity_task,
    })
}
