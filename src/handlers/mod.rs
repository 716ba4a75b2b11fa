//! Business logic that runs inside the event's database transaction.
//!
//! A handler receives the event and the open transaction. Everything it writes through that
//! transaction commits together with the event's dedupe record, or not at all: this is what
//! turns "at least once" deliveries into "exactly once" effects. A handler must therefore do
//! all of its writes through `txn`; a side effect outside it (an HTTP call, a write to another
//! store) is not covered and would happen again on a retry after a rollback.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use sea_orm::{DatabaseTransaction, DbErr};

use crate::clock::Clock;
use crate::event::Event;

mod inbox;
mod payments;
#[cfg(feature = "test-handlers")]
mod testing;
mod writes;

pub use inbox::Inbox;
pub use payments::Payments;
pub use writes::{Rows, Upsert, Writes};

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// A database error; deadlocks and lost serialization races are retried by the engine.
    #[error("database error: {0}")]
    Db(#[from] DbErr),
    /// The event cannot be applied now (a dependency is down, a field is missing that a fix
    /// will tolerate). It is rolled back and answered 500, so the provider retries; fix the
    /// cause, and the retry succeeds.
    #[error("{0}")]
    Failed(String),
    /// The event can never be applied (it breaks a business rule: a payment in another
    /// currency than its order). Its writes are rolled back and it is settled as `rejected`
    /// with this reason and its raw payload: answered 200 `rejected`, so the provider stops
    /// retrying, and every later delivery is answered the same way. Replay it after a fix.
    #[error("rejected: {0}")]
    Reject(String),
}

impl HandlerError {
    pub fn failed(msg: impl Into<String>) -> Self {
        Self::Failed(msg.into())
    }

    pub fn reject(reason: impl Into<String>) -> Self {
        Self::Reject(reason.into())
    }
}

#[async_trait]
pub trait Handler: Send + Sync + 'static {
    async fn handle(&self, event: &Event, txn: &DatabaseTransaction) -> Result<(), HandlerError>;

    /// Group commit: the new events of one batch, all in the same transaction. The default
    /// runs [`Handler::handle`] on each in turn. A handler may override it to write the batch
    /// with fewer statements (one multi-row INSERT instead of one per event): under load the
    /// round trips, not the rows, are what a transaction costs.
    ///
    /// The effect must be the same as `handle` on each event in turn. On any error the whole
    /// batch is rolled back and every event is redone alone through `handle`, so a bad event
    /// only ever fails itself.
    async fn handle_batch(
        &self,
        events: &[&Event],
        txn: &DatabaseTransaction,
    ) -> Result<(), HandlerError> {
        for event in events {
            self.handle(event, txn).await?;
        }
        Ok(())
    }

    /// The rows this handler wants written for the new events of a batch, handed to the store
    /// instead of written here ([`Writes`]): the store then writes the whole batch, dedupe
    /// records and every handler's rows, in as few round trips as the database allows (one
    /// statement on PostgreSQL). `None` (the default) when the handler writes through
    /// [`Handler::handle_batch`] itself; a batch with such a handler takes the transaction
    /// path, as does a batch on another database.
    ///
    /// It must describe exactly what `handle_batch` would write for the same events, and
    /// return the error `handle_batch` would for events it cannot apply: a batch whose
    /// writes fail in any way is redone event by event through [`Handler::handle`].
    fn writes(&self, _events: &[&Event]) -> Option<Result<Writes, HandlerError>> {
        None
    }

    /// Called after a transaction in which this handler ran has committed (never after a
    /// rollback). For what must not start before the handler's rows are visible to other
    /// connections: the `forward` handler wakes the delivery worker here, so a new event is
    /// delivered at once rather than at the worker's next poll. It must be quick and must not
    /// fail: the event is settled whatever it does.
    fn committed(&self) {}
}

/// Runs [`Handler::committed`] of each handler once.
pub fn committed<'a>(handlers: impl IntoIterator<Item = &'a Arc<dyn Handler>>) {
    for handler in handlers {
        handler.committed();
    }
}

/// Handlers by name, as sources refer to them in Rocket.toml.
#[derive(Clone)]
pub struct Registry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl Registry {
    /// The built-in `inbox` and `payments`; `clock` stamps the rows they write.
    pub fn builtin(clock: &Clock) -> Self {
        let registry = Self::empty()
            .with("inbox", Inbox)
            .with("payments", Payments::new(clock.clone()));
        #[cfg(feature = "test-handlers")]
        let registry = registry.with("sleep", testing::Sleep);
        registry
    }

    pub fn empty() -> Self {
        Self {
            handlers: HashMap::new(),
        }
    }

    /// Adds (or replaces) the handler called `name`.
    pub fn with(mut self, name: &str, handler: impl Handler) -> Self {
        self.handlers.insert(name.to_owned(), Arc::new(handler));
        self
    }

    /// This registry with `other`'s handlers added, replacing any of the same name.
    pub fn extend(mut self, other: Registry) -> Self {
        self.handlers.extend(other.handlers);
        self
    }

    pub fn get(&self, name: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(name).cloned()
    }
}
