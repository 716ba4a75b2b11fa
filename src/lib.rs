//! idemhook: a webhook receiver that applies every event exactly once.
//!
//! Providers deliver at least once: they retry on timeouts, on errors, on network faults, and
//! sometimes the same event reaches two instances at the same moment. idemhook turns that
//! into exactly-once *effects*: the event's dedupe record and every write its handlers make
//! commit in one database transaction, and the record's unique key refuses a second commit.
//! After the commit, it forwards the event to the user's own app, at least once and with a
//! stable key; operators look at events, replay them and redeliver them.
//!
//! # One webhook, from the socket to the commit
//!
//! 1. [`routes::webhooks`] reserves room in the in-flight [`budget`], reads the raw body
//!    (bounded by its source's limit) and resolves the source named in the URL
//!    ([`providers::sources`]).
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
//! # After the commit: forwarding to the user's app
//!
//! 7. A source that lists the `forward` handler gets, from [`forward`]'s handler, an outbox row
//!    (the `deliveries` table) written in the event's transaction, like any handler's write:
//!    the event is recorded and its delivery scheduled together, or neither.
//! 8. [`forward`]'s worker, one per instance, leases due deliveries (at most `concurrency`
//!    per source; a lease that runs out lets any instance take the row) and makes each
//!    attempt outside any transaction: the event signed, with an `Idempotency-Key` that is
//!    the same on every attempt. A 2xx settles the row delivered; a failure is retried after
//!    a backoff, and dead after `max_attempts`, kept and redeliverable.
//!
//! # The operator surface
//!
//! Every operator action (search, an event's detail, replay, redeliver, bulk jobs that replay
//! or redrive, the orders view) goes through one service, [`operator::Operator`], called by
//! the admin API ([`routes::admin`], bearer token),
//! the console's pages ([`routes::console`], whose overview reads the last hour from
//! [`activity`]) and the job runner, [`operator`]'s task that works bulk jobs in batches under
//! a lease. The [`cli`] is a client of the admin API (and migrates the schema).
//!
//! # Beside the flow
//!
//! [`config`] (Rocket.toml, validated at launch), [`db`] (connection, migrations, limits,
//! database error sorting), [`sweeper`] (retention), [`metrics`], [`telemetry`] (logs),
//! [`clock`], [`entities`] (the tables), [`status`] (every stored state, typed) and [`task`] (the guard that owns every background
//! task, and the shutdown's order).
//!
//! The modules form a tree: [`event`] and [`status`] are the leaves every stage shares; [`handlers`] read events;
//! the [`engine`] runs handlers; [`routes`] drive the engine. Nothing imports back up.
//!
//! # Building an app
//!
//! [`App`] builds the Rocket instance; `main.rs` only launches it. At launch each subsystem
//! is started by its own `start` ([`engine::start`], [`forward::start`], [`sweeper::start`],
//! `operator::runner::start`, [`activity::start`]), which returns its [`task::TaskGuard`];
//! at shutdown [`task::Tasks::shutdown`] stops them in order: the sweeper and the job runner,
//! then the shards drain, then the delivery worker gives back its leases. A library user adds
//! their own handlers with [`App::handler`] and names them in a source's `handlers` list.

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
pub mod task;
pub mod telemetry;

use std::sync::Arc;
use std::time::Duration;

use rocket::fairing::AdHoc;
use rocket::figment::Figment;
use rocket::{Build, Rocket};

use clock::Clock;
use config::{Environment, Settings};
use engine::Engine;
use handlers::{Handler, Registry};
use metrics::Metrics;
use providers::Sources;
use routes::auth::{FailureLog, Guessing, Operators};
use sweeper::Sweeper;
use task::Tasks;
use telemetry::traces::Traces;

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
    /// Who may use the admin API and the console.
    operators: Operators,
    /// Limits on guessing their tokens (and pull consumers').
    guessing: Guessing,
    clock: Clock,
    /// Every operator action (admin routes, console, job runner).
    operator: operator::Operator,
    /// The `pull` destinations' consumers' requests.
    pull: forward::pull::Pull,
    /// The console's overview reads it.
    activity: Arc<activity::Activity>,
    /// To sweep now (an operator's or a test's `sweep_once`).
    sweeper: Arc<Sweeper>,
    /// Rocket state so that they live, and stop, with the app.
    tasks: Tasks,
}

impl AppState {
    fn manage(self, rocket: Rocket<Build>) -> Rocket<Build> {
        let budget = budget::Budget::new(self.settings.inflight_budget_mib);
        rocket
            .manage(budget)
            .manage(self.settings)
            .manage(self.db)
            .manage(self.engine)
            .manage(self.sources)
            .manage(self.operators)
            .manage(self.guessing)
            .manage(self.clock)
            .manage(self.operator)
            .manage(self.pull)
            .manage(self.activity)
            .manage(self.sweeper)
            .manage(self.tasks)
            .manage(routes::health::Readiness::default())
    }
}

/// On SIGTERM/SIGINT Rocket stops accepting connections and runs this: every event already
/// accepted commits (or fails) and is answered before the shards stop, in the order
/// [`Tasks::shutdown`] keeps.
async fn shutdown(rocket: &Rocket<rocket::Orbit>) {
    let (Some(tasks), Some(engine), Some(settings)) = (
        rocket.state::<Tasks>(),
        rocket.state::<Arc<Engine>>(),
        rocket.state::<Settings>(),
    ) else {
        return;
    };
    let drain = async {
        let queued = engine.in_flight();
        tracing::info!(queued, "shutting down: draining the shards");
        engine
            .drain(Duration::from_secs(settings.shutdown_grace_secs))
            .await
    };
    let left = tasks.shutdown(drain).await;
    // Last, once no request or attempt can end a span: the spans still queued are sent.
    if let Some(traces) = engine.traces() {
        traces.finish(Duration::from_secs(5)).await;
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

/// Reads and checks the settings, then starts each subsystem in turn (each with its own
/// `start`). Any error refuses to launch, naming what is wrong.
async fn ignite(
    rocket: &Rocket<Build>,
    env: &Environment,
    registry: &Registry,
    clock: Clock,
) -> Result<AppState, String> {
    let settings = Settings::from_figment(rocket.figment()).map_err(|e| e.to_string())?;
    settings.validate().map_err(|e| e.to_string())?;
    let metrics = Arc::new(Metrics::new());
    let operators = Operators::from_settings(&settings, env)?;
    let guessing = Guessing::new(&settings.auth, metrics.registry())?;
    let tracing = Traces::start(&settings.tracing, env, metrics.registry())?;
    // `forward` needs each source's ordering pointer and filter, so it is built with the
    // settings.
    let wake = forward::Wake::default();
    let registry = registry.clone().with(
        config::FORWARD_HANDLER,
        forward::Forward::new(&settings, clock.clone(), wake.clone())?,
    );
    let mut sources = Sources::build(&settings, &registry, env, &metrics)?;
    let mut targets = forward::targets(&settings, env).await?;
    let url = settings.database_url(env).map_err(|e| e.to_string())?;
    let db = db::open(&url, &settings).await?;
    let guessing = guessing.audited(FailureLog::new(db.clone(), clock.clone()));
    forward::warn_removed(&db, &forward::destinations(&settings)).await;
    // What one statement can store bounds every body limit, the group commits and the budgets.
    let max_statement = db::max_statement_bytes(&db)
        .await
        .map_err(|e| format!("cannot read the database's max_allowed_packet: {e}"))?;
    let storable = providers::body_limit::storable(max_statement);
    let largest_body = sources.limit_bodies(&settings, webhook_limit(rocket), storable)?;
    budget::Budget::check(settings.inflight_budget_mib, largest_body)?;
    let max_body = |name: &str| sources.get(name).map_or(largest_body, |s| s.max_body);
    forward::bound_slots(&mut targets, max_body, settings.forward_budget_mib)?;
    forward::check(&targets, max_body).await?;

    let engine = engine::start(
        &settings,
        storable,
        db.clone(),
        clock.clone(),
        metrics.clone(),
        tracing.clone(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let forwarder = forward::start(
        &settings,
        targets,
        db.clone(),
        clock.clone(),
        &metrics,
        wake.clone(),
        tracing.0.clone(),
    );
    let cache = engine.cache().clone();
    let (sweeper, sweeping) = sweeper::start(&settings, db.clone(), cache, clock.clone(), metrics);
    let engine = Arc::new(engine);
    let sources = Arc::new(sources);
    let operator = operator::Operator::new(
        db.clone(),
        engine.clone(),
        sources.clone(),
        clock.clone(),
        forward::destinations(&settings),
        forward::kinds(&settings),
    );
    let jobs = operator::runner::start(operator.clone());
    let (activity, reading) = activity::start(&sources, clock.clone());
    let pull = forward::pull::Pull::new(&settings, env, db.clone(), clock.clone(), wake.clone())?;
    Ok(AppState {
        settings,
        pull,
        db,
        engine,
        sources,
        operators,
        guessing,
        clock,
        operator,
        activity,
        sweeper,
        tasks: Tasks {
            sweeper: sweeping,
            jobs,
            forwarder,
            activity: reading,
        },
    })
}
