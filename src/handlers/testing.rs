//! `sleep`: a handler for the test suite only (feature `test-handlers`), never built into a
//! release. It sleeps for the body's `sleep_ms` (a number) inside the open transaction, which
//! lets tests hold an event mid-transaction while they send a signal, kill the process or
//! fill a queue.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::DatabaseTransaction;

use super::{Handler, HandlerError};
use crate::engine::Event;

pub struct Sleep;

#[async_trait]
impl Handler for Sleep {
    async fn handle(&self, event: &Event, _txn: &DatabaseTransaction) -> Result<(), HandlerError> {
        let ms = event
            .json
            .as_ref()
            .and_then(|j| j.get("sleep_ms"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}
