//! A library user's own handler: mark an order refunded when a `refund_issued` event arrives.
//!
//! Run it with `cargo run --example custom_handler`, after adding `"refunds"` to a source's
//! `handlers` in Rocket.toml, e.g. `handlers = ["inbox", "payments", "refunds"]`.
//!
//! The handler writes through the transaction it is given, so its update commits together
//! with the event's dedupe record: a redelivered `refund_issued` is answered `duplicate` and
//! never reaches it again.

use async_trait::async_trait;
use idemhook::handlers::{Handler, HandlerError};
use idemhook::{App, Event};
use sea_orm::{ConnectionTrait, DatabaseTransaction, Statement};

struct Refunds;

#[async_trait]
impl Handler for Refunds {
    async fn handle(&self, event: &Event, txn: &DatabaseTransaction) -> Result<(), HandlerError> {
        if event.key.event_type != "refund_issued" {
            return Ok(());
        }
        let json = event.json();
        let order_id = json
            .as_ref()
            .and_then(|j| j.pointer("/data/order_id"))
            .and_then(|v| v.as_str())
            .ok_or_else(|| HandlerError::failed("refund_issued needs data.order_id"))?;
        let backend = txn.get_database_backend();
        let sql = match backend {
            sea_orm::DatabaseBackend::Postgres => {
                "UPDATE orders SET status = 'refunded' WHERE order_id = $1"
            }
            _ => "UPDATE orders SET status = 'refunded' WHERE order_id = ?",
        };
        let result = txn
            .execute_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [order_id.into()],
            ))
            .await?;
        if result.rows_affected() == 0 {
            // Failing rolls the event back and answers 500: the provider retries later,
            // by which time the payment may have arrived.
            return Err(HandlerError::failed(format!(
                "no order {order_id} to refund yet"
            )));
        }
        Ok(())
    }
}

#[rocket::main]
async fn main() -> Result<(), Box<rocket::Error>> {
    tracing_subscriber::fmt().init();
    App::new()
        .handler("refunds", Refunds)
        .rocket()
        .launch()
        .await
        .map_err(Box::new)?;
    Ok(())
}
