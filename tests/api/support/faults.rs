//! Test-only handlers that fail, panic or block on demand, registered like a library user's
//! (in process only: the real binary has just the `sleep` handler of its `test-handlers`
//! feature).
//!
//! - `flaky` fails every event while [`Faults::fail`] is set;
//! - `panicky` panics on an event of type `boom`;
//! - `picky` rejects an event of type `poison` for good (`HandlerError::Reject`);
//! - `gate` blocks inside the transaction until the test adds a permit to [`Faults::gate`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use idemhook::handlers::{Handler, HandlerError};
use idemhook::{App, Event};
use sea_orm::DatabaseTransaction;
use tokio::sync::Semaphore;

/// Switches shared by the test and the handlers of one app.
#[derive(Clone)]
pub struct Faults {
    /// While set, the `flaky` handler fails every event.
    pub fail: Arc<AtomicBool>,
    /// The `gate` handler takes a permit from here before it returns; tests add permits.
    pub gate: Arc<Semaphore>,
    /// Closed by the `gate` handler each time it is entered, so a test can wait for it.
    pub entered: Arc<Semaphore>,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            fail: Arc::new(AtomicBool::new(false)),
            gate: Arc::new(Semaphore::new(0)),
            entered: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Faults {
    pub fn register(&self, app: App) -> App {
        app.handler("flaky", Flaky(self.fail.clone()))
            .handler("panicky", Panicky)
            .handler("picky", Picky)
            .handler(
                "gate",
                Gate {
                    gate: self.gate.clone(),
                    entered: self.entered.clone(),
                },
            )
    }
}

struct Flaky(Arc<AtomicBool>);

#[async_trait]
impl Handler for Flaky {
    async fn handle(&self, _: &Event, _: &DatabaseTransaction) -> Result<(), HandlerError> {
        if self.0.load(Ordering::SeqCst) {
            return Err(HandlerError::failed("the downstream ledger is unavailable"));
        }
        Ok(())
    }
}

struct Panicky;

#[async_trait]
impl Handler for Panicky {
    async fn handle(&self, event: &Event, _: &DatabaseTransaction) -> Result<(), HandlerError> {
        if event.key.event_type == "boom" {
            panic!("handler bug triggered by {}", event.key.event_id);
        }
        Ok(())
    }
}

struct Gate {
    gate: Arc<Semaphore>,
    entered: Arc<Semaphore>,
}

#[async_trait]
impl Handler for Gate {
    async fn handle(&self, _: &Event, _: &DatabaseTransaction) -> Result<(), HandlerError> {
        self.entered.add_permits(1);
        self.gate
            .acquire()
            .await
            .map_err(|_| HandlerError::failed("gate closed"))?
            .forget();
        Ok(())
    }
}

struct Picky;

#[async_trait]
impl Handler for Picky {
    async fn handle(&self, event: &Event, _: &DatabaseTransaction) -> Result<(), HandlerError> {
        if event.key.event_type == "poison" {
            return Err(HandlerError::reject("poison is never accepted"));
        }
        Ok(())
    }
}
