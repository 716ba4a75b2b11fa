//! `inbox`: the transactional-inbox pattern. Downstream consumers read the `inbox` table
//! instead of receiving webhooks themselves, and see each event once (its key digest is
//! unique in the table).
//!
//! Ids do **not** follow commit order: an id is taken when the row is inserted, and with
//! several writers or instances the transaction holding id N can commit after the one holding
//! N+1. A consumer that tails `id > last id seen` skips N. docs/handlers.md ("Reading the inbox") gives
//! the consumer query that does not, and `tests/api/inbox.rs` shows both.

use async_trait::async_trait;
use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait};

use super::{Handler, HandlerError, Rows, Writes};
use crate::entities::inbox;
use crate::event::Event;

pub struct Inbox;

#[async_trait]
impl Handler for Inbox {
    async fn handle(&self, event: &Event, txn: &DatabaseTransaction) -> Result<(), HandlerError> {
        self.handle_batch(&[event], txn).await
    }

    /// One multi-row INSERT for the group.
    async fn handle_batch(
        &self,
        events: &[&Event],
        txn: &DatabaseTransaction,
    ) -> Result<(), HandlerError> {
        inbox::Entity::insert_many(events.iter().map(|event| row(event)))
            .exec_without_returning(txn)
            .await?;
        Ok(())
    }

    fn writes(&self, events: &[&Event]) -> Option<Result<Writes, HandlerError>> {
        let rows = Rows::of(events.iter().map(|event| row(event)));
        Some(Ok(Writes::none().and(rows)))
    }
}

/// The event's inbox row.
fn row(event: &Event) -> inbox::ActiveModel {
    inbox::ActiveModel {
        key_digest: Set(event.digest.to_vec()),
        source: Set(event.key.source.clone()),
        event_type: Set(event.key.event_type.clone()),
        event_id: Set(event.key.event_id.clone()),
        payload: Set(event.body.clone()),
        received_at: Set(event.received_at),
        ..Default::default()
    }
}
