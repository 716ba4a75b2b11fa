//! A crash mid-transaction, for real: the process is killed with SIGKILL while an event's
//! transaction is open and holds its writes. The database rolls it back, so nothing of the
//! event remains, and the provider's redelivery after the restart is processed exactly once.

use crate::support::*;

on_every_backend!(kill_9_mid_transaction_leaves_nothing_and_the_redelivery_processes_once);

/// What the `sleep` test handler logs once it holds the transaction open. It runs last in the
/// `demo` source ([`DEMO_HANDLERS`]), so by then the dedupe row, the inbox row and the
/// payment are written, uncommitted.
const HOLDING: &str = "test handler: holding the transaction open";

/// A payment whose handlers block inside the open transaction, after the dedupe row, the inbox
/// row and the payment row are written; the process is killed with SIGKILL. After a restart:
/// no trace of it, and the provider's redelivery is processed exactly once.
async fn kill_9_mid_transaction_leaves_nothing_and_the_redelivery_processes_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let cfg = config(&db.url, "shards = 2");
    let mut server = Server::start(&cfg, &ENV).await;
    let client = reqwest::Client::new();
    let body = payment("evt_crash", "order_crash", 700);
    let stuck = {
        let (client, url, body) = (
            client.clone(),
            format!("{}/webhooks/demo", server.base),
            body.clone(),
        );
        tokio::spawn(async move {
            client
                .post(url)
                .header("X-Test-Sleep-Ms", "60000")
                .body(body)
                .send()
                .await
        })
    };
    // Not a metric counted before BEGIN: the line the last handler logs inside the
    // transaction, after the others have written.
    server.wait_for_log(HOLDING).await;
    server.signal("KILL");
    let status = server.wait().await;
    assert!(!status.success(), "exit status {status}");
    assert!(
        stuck.await.unwrap().is_err(),
        "the killed delivery got no answer"
    );
    let conn = db.connect().await;
    let r = rows(&conn).await;
    assert_eq!(
        (r.processed, r.inbox, r.failed),
        (0, 0, 0),
        "a killed transaction left rows behind"
    );
    assert_eq!(amount_paid(&conn, "order_crash").await, None);

    let server = Server::start(&cfg, &ENV).await;
    let (status, text, _) = post(&client, &server, "demo", &body, &[]).await;
    assert_eq!(
        (status, text.contains(r#""status":"processed""#)),
        (200, true),
        "{text}"
    );
    let (_, text, _) = post(&client, &server, "demo", &body, &[]).await;
    assert!(text.contains(r#""status":"duplicate""#), "{text}");
    assert_eq!(amount_paid(&conn, "order_crash").await, Some(700));
    let r = rows(&conn).await;
    assert_eq!((r.processed, r.inbox), (1, 1));
    drop(server);
    db.drop_db().await;
}
