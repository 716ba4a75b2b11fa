//! `inbox`: the transactional-inbox pattern. Downstream consumers read the `inbox` table
//! instead of receiving webhooks themselves, so they see each event once, in commit order.

use async_trait::async_trait;
use sea_orm::{ActiveValue::Set, DatabaseTransaction, EntityTrait};

use super::{Handler, HandlerError};
use crate::entities::inbox;
use crate::event::Event;

pub struct Inbox;

#[async_trait]
impl Handler for Inbox {
    async fn handle(&self, event: &Event, txn: &DatabaseTransaction) -> Result<(), HandlerError> {
        self.handle_batch(&[event], txn).await
    }

    /// One multi-row INSERT; rows keep the batch's order, so ids still follow commit order.
    async fn handle_batch(
        &self,
        events: &[&Event],
        txn: &DatabaseTransaction,
    ) -> Result<(), HandlerError> {
        let rows = events.iter().map(|event| inbox::ActiveModel {
            key_digest: Set(event.digest.to_vec()),
            source: Set(event.key.source.clone()),
            event_type: Set(event.key.event_type.clone()),
            event_id: Set(event.key.event_id.clone()),
            payload: Set(event.body.clone()),
            received_at: Set(event.received_at),
            ..Default::default()
        });
        inbox::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await?;
        Ok(())
    }
}
