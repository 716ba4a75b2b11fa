//! The `rabbitmq` destination kind: each delivery published to an exchange, persistent and
//! `mandatory`, and counted as delivered only on the broker's publisher confirm.
//!
//! **At least once.** RabbitMQ keeps no message ids: a publish whose confirm was lost (a cut
//! connection, a timeout, a crash after the confirm) is published again, and the queue may
//! then hold it twice. Every copy carries `message_id` = the event's `Idempotency-Key`, the
//! same on every attempt and every instance, for consumers to apply each event once.
//!
//! - A message no queue is bound for comes back (`mandatory`): a failed attempt, retried, and
//!   dead after `max_attempts`, not a delivery into nowhere.
//! - A nack, an error or a lost connection before the confirm is a failed attempt.
//! - One connection and one channel (in confirm mode) per destination, shared by its attempts;
//!   one that fails is dropped and the next attempt connects again: it reconnects by itself.
//! - The exchange must exist (idemhook never declares it): checked at launch when the broker
//!   answers (a missing one refuses to launch), else on the first connection (it then pauses
//!   the destination as `misconfigured`).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};

use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ErrorKind,
    ExchangeKind,
};
use tokio::sync::Mutex;

use super::attempt::{self, idempotency_key, Answer, Fault, Transport, Verdict};
use super::http::header_value;
use super::metrics::Class;
use crate::config::subject::Template;
use crate::config::{Environment, ForwardConfig};
use crate::entities::delivery;

/// AMQP's reply code for a missing exchange (and 403: not allowed to use it).
const NOT_FOUND: u16 = 404;
const ACCESS_REFUSED: u16 = 403;

/// One exchange of one broker, and the routing keys a source's events are published with.
pub struct Rabbitmq {
    destination: String,
    table: String,
    /// The AMQP URL, read from `url_env` (it holds the password: never logged).
    url: String,
    exchange: String,
    routing_key: Template,
    timeout: Duration,
    /// The open connection and its channel in confirm mode, while they work.
    open: Mutex<Option<(Connection, Channel)>>,
    /// The exchange was found on this broker: not checked again until a connection fails.
    checked: AtomicBool,
}

impl Rabbitmq {
    /// Reads the URL's variable; connects nowhere yet.
    pub fn new(
        config: &ForwardConfig,
        destination: &str,
        table: &str,
        env: &Environment,
    ) -> Result<Self, String> {
        let var = config.url_env.as_deref().unwrap_or_default();
        let url = env.required(table, "url_env", var)?;
        if !url.starts_with("amqp://") && !url.starts_with("amqps://") {
            return Err(format!(
                "{table}.url_env: {var} does not hold an amqp:// or amqps:// URL"
            ));
        }
        let routing_key = Template::parse(&config.routing_key)
            .map_err(|e| format!("{table}.routing_key: {e}"))?;
        Ok(Self {
            destination: destination.to_owned(),
            table: table.to_owned(),
            url,
            exchange: config.exchange.clone(),
            routing_key,
            timeout: Duration::from_secs(config.timeout_secs()),
            open: Mutex::new(None),
            checked: AtomicBool::new(false),
        })
    }

    /// The launch's check: a broker that answers and has no such exchange refuses to launch;
    /// one that does not answer lets the destination start (checked once it connects).
    async fn launch_check(&self) -> Result<(), String> {
        let check = async { self.channel().await.map(|_| ()) };
        attempt::launch_check(&self.destination, check).await
    }

    /// The channel to publish on: the open one, or a new connection (its exchange checked
    /// the first time) in confirm mode.
    async fn channel(&self) -> Result<Channel, Verdict> {
        let mut open = self.open.lock().await;
        if let Some((_, channel)) = open.as_ref() {
            if channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        *open = None;
        let unreachable = |e: lapin::Error| Verdict::Unreachable(e.to_string());
        let properties = ConnectionProperties::default()
            .with_connection_name(format!("idemhook {}", self.destination).into());
        let connect = Connection::connect(&self.url, properties);
        let connection = tokio::time::timeout(self.timeout, connect)
            .await
            .map_err(|_| Verdict::Unreachable("connection: timeout".to_owned()))?
            .map_err(unreachable)?;
        if !self.checked.load(Ordering::Relaxed) {
            // A passive declare on a channel of its own: a missing exchange closes it.
            let probe = connection.create_channel().await.map_err(unreachable)?;
            let passive = ExchangeDeclareOptions {
                passive: true,
                ..ExchangeDeclareOptions::default()
            };
            let declared = probe
                .exchange_declare(
                    self.exchange.as_str().into(),
                    ExchangeKind::Topic,
                    passive,
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(()) => {
                    let _ = probe.close(200, "checked".into()).await;
                }
                Err(e) => return Err(self.sorted(e)),
            }
            self.checked.store(true, Ordering::Relaxed);
        }
        let channel = connection.create_channel().await.map_err(unreachable)?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unreachable)?;
        *open = Some((connection, channel.clone()));
        Ok(channel)
    }

    /// A passive declare's error: the exchange missing or forbidden is the setup's fault.
    fn sorted(&self, e: lapin::Error) -> Verdict {
        match e.kind() {
            ErrorKind::ProtocolError(amqp)
                if matches!(amqp.get_id(), NOT_FOUND | ACCESS_REFUSED) =>
            {
                Verdict::Misconfigured(format!(
                    "{}.exchange: the exchange {:?} cannot be used ({e}): declare it, and let \
                     the URL's user publish to it (idemhook never declares an exchange)",
                    self.table, self.exchange
                ))
            }
            _ => Verdict::Unreachable(e.to_string()),
        }
    }

    fn properties(&self, row: &delivery::Model) -> BasicProperties {
        let mut headers = FieldTable::default();
        let mut put = |name: &str, value: String| {
            headers.insert(name.into(), AMQPValue::LongString(LongString::from(value)));
        };
        put("Idemhook-Source", header_value(&row.source));
        put("Idemhook-Event-Type", header_value(&row.event_type));
        put("Idemhook-Event-Id", header_value(&row.event_id));
        put("Idemhook-Destination", self.destination.clone());
        put("Idemhook-Attempt", row.attempts.to_string());
        put("Idempotency-Key", idempotency_key(row.event_key()));
        if let Some(traceparent) = &row.traceparent {
            put("traceparent", traceparent.clone());
        }
        let content_type = row
            .content_type
            .as_deref()
            .and_then(|c| ShortString::try_new(c).ok())
            .unwrap_or_else(|| "application/json".into());
        BasicProperties::default()
            .with_message_id(idempotency_key(row.event_key()).into())
            .with_content_type(content_type)
            .with_delivery_mode(2) // persistent
            .with_headers(headers)
    }

    async fn publish(&self, row: &delivery::Model) -> Answer {
        let channel = match self.channel().await {
            Ok(channel) => channel,
            Err(Verdict::Misconfigured(why)) => {
                return Answer::failed(Class::Rejected, why, Fault::Misconfigured)
            }
            Err(Verdict::Unreachable(why)) => {
                return Answer::failed(Class::Connect, format!("connection: {why}"), Fault::None)
            }
        };
        let key = self
            .routing_key
            .render(&row.source, &row.event_type, &row.event_id);
        let Ok(routing_key) = ShortString::try_new(key) else {
            return Answer::failed(
                Class::Rejected,
                "the routing key is longer than AMQP's 255 bytes".to_owned(),
                Fault::Undeliverable,
            );
        };
        let mandatory = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let sent = channel
            .basic_publish(
                self.exchange.as_str().into(),
                routing_key,
                mandatory,
                &row.payload,
                self.properties(row),
            )
            .await;
        let confirm = match sent {
            Ok(confirm) => confirm,
            Err(e) => return self.lost(format!("connection: {e}")).await,
        };
        match tokio::time::timeout(self.timeout, confirm).await {
            Ok(Ok(Confirmation::Ack(None))) => Answer::taken(),
            Ok(Ok(Confirmation::Ack(Some(returned)))) => Answer::failed(
                Class::Rejected,
                format!(
                    "unroutable: no queue is bound to exchange {:?} for this routing key ({} {})",
                    self.exchange, returned.reply_code, returned.reply_text
                ),
                Fault::None,
            ),
            Ok(Ok(Confirmation::Nack(_))) => Answer::failed(
                Class::Rejected,
                "nack: the broker could not take the message".to_owned(),
                Fault::None,
            ),
            Ok(Ok(Confirmation::NotRequested)) => {
                self.lost("the channel is not in confirm mode".to_owned())
                    .await
            }
            Ok(Err(e)) => self.lost(format!("connection: {e}")).await,
            Err(_) => {
                let answer = Answer::failed(
                    Class::Timeout,
                    "timeout: no confirm from the broker".to_owned(),
                    Fault::None,
                );
                self.drop_channel().await;
                answer
            }
        }
    }

    /// The connection failed under an attempt: dropped, and the next attempt connects again.
    async fn lost(&self, error: String) -> Answer {
        self.drop_channel().await;
        Answer::failed(Class::Connect, error, Fault::None)
    }

    /// Forgets the connection, and that the exchange was found: the next connection checks
    /// it again (an exchange deleted meanwhile pauses the destination, not kills deliveries).
    async fn drop_channel(&self) {
        *self.open.lock().await = None;
        self.checked.store(false, Ordering::Relaxed);
    }
}

#[async_trait]
impl Transport for Rabbitmq {
    async fn send(&self, row: &delivery::Model, _now: DateTime<Utc>) -> Answer {
        self.publish(row).await
    }

    async fn check_at_launch(&self, _max_body: u64) -> Result<(), String> {
        self.launch_check().await
    }
}
