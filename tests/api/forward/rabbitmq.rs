//! The `rabbitmq` destination, for real: the binary publishing to an exchange of the
//! machine's RabbitMQ (127.0.0.1:5672) through the harness's proxy, which cuts the connection
//! mid-run. Each test declares its own exchange and queue (random names) and reads the queue
//! back: every event confirmed into it (at least once: a publish whose confirm was lost may
//! be there twice, each copy with the event's `message_id`), and an unroutable routing key
//! dead after `max_attempts`, never counted as delivered.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::support::*;

on_every_backend!(every_event_is_confirmed_into_the_queue_through_a_cut_connection);

fn event(i: usize) -> (String, String) {
    let id = format!("evt_{i:04}");
    let ty = ["orders/paid", "invoice.paid", "push"][i % 3];
    let body = format!("{{\"id\":\"{id}\",\"type\":\"{ty}\",  \"total\":\"9.90\"}}");
    (id, body)
}

async fn every_event_is_confirmed_into_the_queue_through_a_cut_connection(backend: Backend) {
    let db = TestDb::create(backend).await;
    let channel = broker().await;
    let tag = format!("{:08x}", rand::random::<u32>());
    let (exchange, queue) = (format!("ih_x_{tag}"), format!("ih_q_{tag}"));
    let proxy = Proxy::start(BROKER).await;
    let mut env = fwd_env();
    env.push((
        "AMQP_URL",
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port),
    ));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut cfg = config(&db.url, "forward_poll_ms = 50");
    cfg.push_str(&format!(
        "[default.idemhook.sources.fan]\nhandlers = [\"forward\"]\n\
         [default.idemhook.sources.fan.destinations.ledger]\nkind = \"rabbitmq\"\n\
         url_env = \"AMQP_URL\"\nexchange = \"{exchange}\"\nrouting_key = \"{{source}}.{{type}}\"\n\
         backoff_base_ms = 50\nbackoff_max_secs = 1\ntimeout_secs = 2\nprobe_secs = 1\n\
         [default.idemhook.sources.fan.destinations.nowhere]\nkind = \"rabbitmq\"\n\
         url_env = \"AMQP_URL\"\nexchange = \"{exchange}\"\nrouting_key = \"nowhere.{{type}}\"\n\
         backoff_base_ms = 50\nbackoff_max_secs = 1\nmax_attempts = 2\npause_after_failures = 0\n"
    ));

    // The exchange does not exist yet: the launch refuses, naming it.
    let (status, logs) = Server::launch_fails(&cfg, &env).await;
    assert!(!status.success());
    assert!(
        logs.iter()
            .any(|l| l.contains(&exchange) && l.contains("cannot be used")),
        "{logs:#?}"
    );

    declare(&channel, &exchange, &queue, "fan.#").await;
    let server = Server::start(&cfg, &env).await;
    let client = reqwest::Client::new();
    for i in 0..200 {
        if i == 100 {
            // The connection cut mid-run, and restored: idemhook reconnects by itself.
            proxy.cut();
            tokio::time::sleep(Duration::from_millis(500)).await;
            proxy.restore();
        }
        let (status, text, _) = post_until_ok(&client, &server, "fan", &event(i).1).await;
        assert_eq!(status, 200, "{text}");
    }

    // Every event confirmed into the queue; the unroutable ones dead after two attempts.
    let conn = db.connect().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let row = query_row(
            &conn,
            "SELECT \
               COUNT(CASE WHEN destination = 'ledger' AND status = 'delivered' THEN 1 END), \
               COUNT(CASE WHEN destination = 'nowhere' AND status = 'dead' THEN 1 END) \
             FROM deliveries",
        )
        .await;
        let delivered: i64 = row.try_get_by_index(0).unwrap();
        let dead: i64 = row.try_get_by_index(1).unwrap();
        if delivered == 200 && dead == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{delivered} delivered, {dead} dead of 200"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let error: String = query_row(
        &conn,
        "SELECT last_error FROM deliveries WHERE destination = 'nowhere' LIMIT 1",
    )
    .await
    .try_get_by_index(0)
    .unwrap();
    assert!(error.contains("unroutable"), "{error}");
    let attempts: i32 = query_row(
        &conn,
        "SELECT MAX(attempts) FROM deliveries WHERE destination = 'nowhere'",
    )
    .await
    .try_get_by_index(0)
    .unwrap();
    assert_eq!(attempts, 2);

    let messages = drain(&channel, &queue).await;
    let mut by_event: BTreeMap<String, Vec<&lapin::message::Delivery>> = BTreeMap::new();
    for m in &messages {
        by_event
            .entry(amqp_header(m, "Idemhook-Event-Id"))
            .or_default()
            .push(m);
    }
    assert_eq!(by_event.len(), 200, "every event is in the queue");
    for i in 0..200 {
        let (id, body) = event(i);
        for m in &by_event[&id] {
            assert_eq!(m.data, body.as_bytes(), "{id}'s body");
            let key = amqp_header(m, "Idempotency-Key");
            assert!(key.starts_with("ih_"));
            assert_eq!(
                m.properties.message_id().as_ref().map(|s| s.as_str()),
                Some(key.as_str())
            );
            assert_eq!(*m.properties.delivery_mode(), Some(2), "persistent");
            assert_eq!(amqp_header(m, "Idemhook-Destination"), "ledger");
            assert!(m.routing_key.as_str().starts_with("fan."));
        }
    }
    // At least once: the only copies are publishes whose confirm the cut lost, at most one per
    // slot (`concurrency`, 16) in flight then.
    assert!(messages.len() - 200 <= 16, "{} messages", messages.len());

    drop(server);
    undeclare(&channel, &exchange, &queue).await;
    db.drop_db().await;
}
