//! The operator surface on the real binary, on every backend: search and pages, the detail
//! view, replays (one, forced, refused, bulk), redrive jobs, the OpenAPI document; the CLI
//! through its own process ([`cli`]).

mod cli;
mod paging;
mod retry;

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::*;

on_every_backend!(
    search_detail_and_replay_of_rejected_failed_and_processed_events,
    a_bulk_replay_job_replays_the_fixed_events_once,
    a_redrive_job_reschedules_every_dead_delivery,
    a_job_whose_runner_died_is_finished_by_another_instance,
    concurrent_replays_of_one_event_apply_once,
    jobs_started_while_others_run_are_all_accepted,
);

async fn search_detail_and_replay_of_rejected_failed_and_processed_events(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = operator_server(&db).await;
    let http = reqwest::Client::new();
    let ops = Ops::new(&server);
    for (id, order) in [("e1", "o1"), ("e2", "o2")] {
        assert_eq!(
            post(&http, &server, "demo", &payment(id, order, 10), &[])
                .await
                .0,
            200
        );
    }
    // Rejected: o2 is kept in eur.
    let (status, body, _) = post(&http, &server, "demo", &usd_payment("e_usd", "o2"), &[]).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("rejected"), "{body}");
    // Failed: its handlers outlive their bound.
    let slow = payment("e_slow", "o3", 7);
    let (status, _, _) = post(
        &http,
        &server,
        "demo",
        &slow,
        &[("X-Test-Sleep-Ms", "3000")],
    )
    .await;
    assert!(status >= 500, "{status}");

    let all = ops.all("", 50).await;
    assert_eq!(ids(&all), ["e_slow", "e_usd", "e2", "e1"], "newest first");
    let status_of: BTreeMap<_, _> = all
        .iter()
        .map(|e| {
            (
                e["event_id"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(status_of["e_slow"], "failed");
    assert_eq!(status_of["e_usd"], "rejected");
    assert_eq!(status_of["e1"], "processed");
    assert_eq!(ids(&ops.all("", 1).await), ids(&all), "pages of one");
    assert_eq!(ids(&ops.all("&status=rejected", 10).await), ["e_usd"]);
    assert_eq!(ids(&ops.all("&status=failed", 10).await), ["e_slow"]);
    assert_eq!(
        ids(&ops.all("&status=processed&source=demo", 10).await),
        ["e2", "e1"]
    );
    assert!(ops.all("&source=strict", 10).await.is_empty());
    assert!(ops.all("&since=2100-01-01T00:00:00Z", 10).await.is_empty());
    for (query, needle) in [
        ("?staus=dead", "unknown query parameter `staus`"),
        ("?status=done", "`status` must be one of"),
        ("?cursor=bogus", "`cursor`"),
        ("?limit=0", "`limit`"),
        ("?source=a&source=b", "more than once"),
    ] {
        let (status, body) = ops.get(&format!("/events{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(needle),
            "{query}: {body}"
        );
    }

    // The failed event: its attempt history and the payload kept for a replay.
    let (status, view) = ops
        .get(&format!("/webhooks/demo/events/e_slow?{PAY}"))
        .await;
    assert_eq!(status, 200, "{view}");
    assert_eq!(view["status"], "failed");
    assert_eq!(view["handler_attempts"][0]["outcome"], "failed", "{view}");
    assert_eq!(view["payload"], slow.as_str());
    assert_eq!(view["payload_from"], "replay_store");

    // Replays: the failed one applies; a processed one is refused unless forced.
    let (status, body) = ops
        .post(&format!("/webhooks/demo/events/e_slow/replay?{PAY}"))
        .await;
    assert_eq!(
        (status, &body["previous_status"]),
        (200, &Value::from("failed")),
        "{body}"
    );
    assert_eq!(amount_paid(&db.connect().await, "o3").await, Some(7));
    let (status, body) = ops
        .post(&format!("/webhooks/demo/events/e_slow/replay?{PAY}"))
        .await;
    assert_eq!(status, 409, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("force=true"),
        "{body}"
    );
    // A provider's retry of it is now a duplicate.
    let (status, body, _) = post(&http, &server, "demo", &slow, &[]).await;
    assert!(status == 200 && body.contains("duplicate"), "{body}");
    let (status, body) = ops
        .post(&format!("/webhooks/demo/events/e1/replay?{PAY}&force=true"))
        .await;
    assert_eq!(
        (status, body["forced"].clone()),
        (200, Value::from(true)),
        "{body}"
    );
    // Forced: the payment applied again (documented), the inbox row replaced, not doubled.
    assert_eq!(amount_paid(&db.connect().await, "o1").await, Some(20));
    let (_, view) = ops.get(&format!("/webhooks/demo/events/e1?{PAY}")).await;
    assert_eq!(view["replays"][0]["forced"], true, "{view}");
    // The authenticated operator; the `Idemhook-Operator: alice` the client sent is a note.
    assert_eq!(view["replays"][0]["operator"], "admin");
    assert_eq!(view["payload_from"], "inbox");

    // The rejected one: refused again until the data is fixed, then processed.
    let path = format!("/webhooks/demo/events/e_usd/replay?{PAY}");
    let (status, body) = ops.post(&path).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("kept in eur"),
        "{body}"
    );
    execute(
        &db.connect().await,
        "UPDATE orders SET currency = 'usd' WHERE order_id = 'o2'",
    )
    .await;
    let (status, body) = ops.post(&path).await;
    assert_eq!(
        (status, &body["previous_status"]),
        (200, &Value::from("rejected")),
        "{body}"
    );
    assert_eq!(amount_paid(&db.connect().await, "o2").await, Some(15));
    assert!(ops.all("&status=rejected", 10).await.is_empty());

    // Bad requests and unknown events.
    let (status, _) = ops
        .post(&format!("/webhooks/demo/events/nope/replay?{PAY}"))
        .await;
    assert_eq!(status, 404);
    let (status, body) = ops.post("/webhooks/demo/events/e1/replay").await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = ops
        .post(&format!("/webhooks/demo/events/e1/replay?{PAY}&force=yes"))
        .await;
    assert_eq!(status, 400);
    let (status, _) = ops
        .get(&format!("/webhooks/demo/events/e1?{PAY}&extra=1"))
        .await;
    assert_eq!(status, 400);

    let doc: Value = reqwest::get(format!("{}/openapi.json", server.base))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/events",
        "/jobs/{id}",
        "/deliveries/redrive",
        "/webhooks/{source}",
        "/metrics",
    ] {
        assert!(
            doc["paths"][path].is_object(),
            "{path} missing from the document"
        );
    }
    drop(server);
    db.drop_db().await;
}

async fn a_bulk_replay_job_replays_the_fixed_events_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = operator_server(&db).await;
    let http = reqwest::Client::new();
    let ops = Ops::new(&server);
    assert_eq!(
        post(&http, &server, "demo", &payment("first", "o9", 1), &[])
            .await
            .0,
        200
    );
    for n in 0..5 {
        let id = format!("late_{n}");
        assert_eq!(
            post(&http, &server, "demo", &usd_payment(&id, "o9"), &[])
                .await
                .0,
            200
        );
    }
    let (status, body) = ops.post("/events/replay?status=processed").await;
    assert_eq!(status, 400, "{body}");
    execute(
        &db.connect().await,
        "UPDATE orders SET currency = 'usd' WHERE order_id = 'o9'",
    )
    .await;
    let (status, job) = ops.post("/events/replay?source=demo").await;
    assert_eq!(status, 202, "{job}");
    assert_eq!(job["matched"], 5, "{job}");
    assert_eq!(job["created_by"], "admin");
    let job = ops.finished(job["id"].as_i64().unwrap()).await;
    assert_eq!(
        (job["status"].clone(), job["done"].clone()),
        ("done".into(), 5.into()),
        "{job}"
    );
    assert_eq!(amount_paid(&db.connect().await, "o9").await, Some(26));
    // Again: nothing matches, nothing applies twice.
    let (_, job) = ops.post("/events/replay?source=demo").await;
    let job = ops.finished(job["id"].as_i64().unwrap()).await;
    assert_eq!(
        (job["matched"].clone(), job["done"].clone()),
        (0.into(), 0.into()),
        "{job}"
    );
    assert_eq!(amount_paid(&db.connect().await, "o9").await, Some(26));
    let (_, view) = ops
        .get(&format!("/webhooks/demo/events/late_0?{PAY}"))
        .await;
    assert!(view["replays"][0]["job_id"].is_i64(), "{view}");
    let (status, _) = ops.get("/jobs/999999").await;
    assert_eq!(status, 404);
    drop(server);
    db.drop_db().await;
}

/// Dead deliveries and their history; a redrive job reschedules them all, and they arrive.
async fn a_redrive_job_reschedules_every_dead_delivery(backend: Backend) {
    let db = TestDb::create(backend).await;
    let app = Receiver::start().await;
    app.answer(Answer::Status(502));
    let server = start(&fwd_config(&db.url, &app.url(), "max_attempts = 2")).await;
    let ops = Ops::new(&server);
    ops.dead_deliveries("d", 4).await;
    let (_, view) = ops.get(&format!("/webhooks/fwd/events/d0?{PAY}")).await;
    let outcomes: Vec<&str> = view["delivery_attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["retry", "dead"], "{view}");
    assert_eq!(view["delivery_attempts"][1]["status_code"], 502);
    assert_eq!(view["payload_from"], "outbox");

    app.answer(Answer::Ok);
    let (status, job) = ops
        .post("/deliveries/redrive?source=fwd&status=delivered")
        .await;
    assert_eq!(status, 400, "{job}");
    let (status, job) = ops.post("/deliveries/redrive?source=fwd").await;
    assert_eq!((status, job["matched"].clone()), (202, 4.into()), "{job}");
    let job = ops.finished(job["id"].as_i64().unwrap()).await;
    assert_eq!(
        (job["done"].clone(), job["skipped"].clone()),
        (4.into(), 0.into()),
        "{job}"
    );
    ops.await_count("&status=delivered", 4).await;
    assert!(ops.all("&status=dead", 10).await.is_empty());
    drop(server);
    db.drop_db().await;
}

/// A job is rows, not memory: one left running by an instance that died (its lease run out)
/// is taken up and finished by the next instance to start.
async fn a_job_whose_runner_died_is_finished_by_another_instance(backend: Backend) {
    let db = TestDb::create(backend).await;
    let first = operator_server(&db).await;
    let http = reqwest::Client::new();
    assert_eq!(
        post(&http, &first, "demo", &payment("a", "oa", 1), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        post(&http, &first, "demo", &usd_payment("b", "oa"), &[])
            .await
            .0,
        200
    );
    drop(first);
    execute(
        &db.connect().await,
        "UPDATE orders SET currency = 'usd' WHERE order_id = 'oa'",
    )
    .await;
    // As the dead instance left it: running, leased, the lease long expired.
    let t = match backend {
        Backend::Sqlite => "'2020-01-01 00:00:00+00:00'",
        _ => "'2020-01-01 00:00:00'",
    };
    execute(
        &db.connect().await,
        &format!(
            "INSERT INTO jobs (kind, filters, status, matched, done, failed, skipped, \
             lease_until, created_by, created_at, updated_at) VALUES ('replay', \
             '{{\"status\":\"rejected\"}}', 'running', 1, 0, 0, 0, {t}, 'gone', {t}, {t})"
        ),
    )
    .await;
    let server = operator_server(&db).await;
    let ops = Ops::new(&server);
    let job = ops.finished(1).await;
    assert_eq!(
        (job["status"].clone(), job["done"].clone()),
        ("done".into(), 1.into()),
        "{job}"
    );
    assert_eq!(amount_paid(&db.connect().await, "oa").await, Some(6));
    drop(server);
    db.drop_db().await;
}

/// Eight operators replay the same fixed event at once: the record's row lets one through;
/// the others find it processed (409), and the payment is applied once.
async fn concurrent_replays_of_one_event_apply_once(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = operator_server(&db).await;
    let http = reqwest::Client::new();
    assert_eq!(
        post(&http, &server, "demo", &payment("p", "or", 1), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        post(&http, &server, "demo", &usd_payment("r", "or"), &[])
            .await
            .0,
        200
    );
    execute(
        &db.connect().await,
        "UPDATE orders SET currency = 'usd' WHERE order_id = 'or'",
    )
    .await;
    let path = format!("/webhooks/demo/events/r/replay?{PAY}");
    let ops = Ops::new(&server);
    let answers = futures::future::join_all((0..8).map(|_| ops.post(&path))).await;
    let statuses: Vec<u16> = answers.iter().map(|(s, _)| *s).collect();
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{answers:?}"
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 409).count(),
        7,
        "{answers:?}"
    );
    assert_eq!(amount_paid(&db.connect().await, "or").await, Some(6));
    let (_, view) = ops.get(&format!("/webhooks/demo/events/r?{PAY}")).await;
    assert_eq!(view["replays"].as_array().unwrap().len(), 1, "{view}");
    drop(server);
    db.drop_db().await;
}

/// Found by schemathesis on SQLite: a job started while a runner wrote another job's progress
/// was answered 500 or 503 (a read-then-write transaction that could not upgrade its lock).
/// Twenty jobs started at once, while the runner works through them, are all accepted and
/// all finish.
async fn jobs_started_while_others_run_are_all_accepted(backend: Backend) {
    let db = TestDb::create(backend).await;
    let server = operator_server(&db).await;
    let http = reqwest::Client::new();
    assert_eq!(
        post(&http, &server, "demo", &payment("j", "oj", 1), &[])
            .await
            .0,
        200
    );
    assert_eq!(
        post(&http, &server, "demo", &usd_payment("k", "oj"), &[])
            .await
            .0,
        200
    );
    let ops = Ops::new(&server);
    let paths = (0..20).map(|n| {
        if n % 2 == 0 {
            "/deliveries/redrive?type=payment_succeeded"
        } else {
            "/events/replay?source=demo"
        }
    });
    let answers = futures::future::join_all(paths.map(|p| ops.post(p))).await;
    for (status, job) in &answers {
        assert_eq!(*status, 202, "{job}");
    }
    for (_, job) in &answers {
        let job = ops.finished(job["id"].as_i64().unwrap()).await;
        assert_eq!(job["status"], "done", "{job}");
    }
    drop(server);
    db.drop_db().await;
}
