//! The machine's RabbitMQ (127.0.0.1:5672, guest/guest), as the tests reach it directly:
//! an exchange and a queue of the test's own, and the queue read back.

use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};

pub const BROKER: &str = "127.0.0.1:5672";

pub async fn broker() -> Channel {
    let url = format!("amqp://guest:guest@{BROKER}/%2f");
    let connection = Connection::connect(&url, ConnectionProperties::default())
        .await
        .expect("RabbitMQ on 127.0.0.1:5672 (guest/guest)");
    // Kept open for the test's life: its channel is all the test holds.
    let channel = connection.create_channel().await.unwrap();
    std::mem::forget(connection);
    channel
}

/// A topic `exchange` and a `queue` bound to it by `binding`.
pub async fn declare(channel: &Channel, exchange: &str, queue: &str, binding: &str) {
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            binding.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// Removes what [`declare`] made.
pub async fn undeclare(channel: &Channel, exchange: &str, queue: &str) {
    let _ = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await;
    let _ = channel
        .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
        .await;
}

/// Every message of `queue`, taken off it.
pub async fn drain(channel: &Channel, queue: &str) -> Vec<lapin::message::Delivery> {
    let mut out = Vec::new();
    let options = BasicGetOptions { no_ack: true };
    while let Some(message) = channel.basic_get(queue.into(), options).await.unwrap() {
        out.push(message.delivery);
    }
    out
}

/// A message's header `name` (a long string), or a panic naming what is there instead.
pub fn amqp_header(delivery: &lapin::message::Delivery, name: &str) -> String {
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    match headers.inner().get(name) {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("{name}: {other:?}"),
    }
}
