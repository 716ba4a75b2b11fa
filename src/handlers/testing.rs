//! `sleep`: a handler for the test suite only (feature `test-handlers`), never built into a
//! release. It sleeps for the milliseconds in the request's `X-Test-Sleep-Ms` header inside
//! the open transaction, which lets tests hold an event mid-transaction while they send a
//! signal, kill the process or fill a queue. A header, not the body, so a redelivery of the
//! same body without it goes straight through.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::DatabaseTransaction;

use super::{Handler, HandlerError};
use crate::event::Event;

pub const SLEEP_HEADER: &str = "x-test-sleep-ms";

pub struct Sleep;

#[async_trait]
impl Handler for Sleep {
    async fn handle(&self, event: &Event, _txn: &DatabaseTransaction) -> Result<(), HandlerError> {
        let ms = event
            .header(SLEEP_HEADER)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        if ms > 0 {
            // Tests that kill the process mid-transaction wait for this line: the handlers
            // before this one have written inside the open transaction by now.
            tracing::info!(ms, "test handler: holding the transaction open");
        }
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(())
    }
}
