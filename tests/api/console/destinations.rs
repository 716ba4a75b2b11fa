//! The console's pages for several destinations, on the real binary: the Destinations page
//! lists each with its state and pauses and resumes it through the admin API (with the CSRF
//! token, refused without it); an event's page shows each destination's delivery, each with a
//! Redeliver button for that destination alone.

use crate::support::*;

on_every_backend!(destinations_are_listed_paused_and_redelivered_one_by_one);

/// The `data-post` of the button in the table row of `destination` on `page`.
fn row_action(page: &Seen, destination: &str) -> String {
    let marker = format!(r#"data-destination="{destination}""#);
    let at = page
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("no row {destination}: {}", page.body));
    let row = &page.body[at..];
    let row = &row[..row.find("</tr>").unwrap()];
    let needle = r#"data-post=""#;
    let value = &row[row.find(needle).expect("a button") + needle.len()..];
    value[..value.find('"').unwrap()].replace("&amp;", "&")
}

async fn destinations_are_listed_paused_and_redelivered_one_by_one(backend: Backend) {
    let ledger = Receiver::start().await;
    let table = format!(
        "[default.idemhook.sources.fwd.destinations.ledger]\nurl = \"{}\"\n\
         secret_env = \"FWD_SECRET\"\nmax_attempts = 1\ntimeout_secs = 1\n",
        ledger.url()
    );
    let (console, csrf) = Console::signed_in_with(backend, &table).await;
    let browser = &console.browser;
    let http = reqwest::Client::new();
    let body = payment("evt_fan", "o_fan", 10);
    assert_eq!(post(&http, &console.server, "fwd", &body, &[]).await.0, 200);
    // The app (forward) answers 500: dead after one attempt; the ledger takes it.
    ledger.wait_for_delivered(1, 30).await;
    let ops = Ops::new(&console.server);
    ops.wait_for_event("evt_fan", 30, |v| {
        v["deliveries"]
            .as_array()
            .is_some_and(|d| d.len() == 2 && d.iter().all(|d| d["status"] != "pending"))
    })
    .await;

    let page = browser.get("/console/destinations").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains(r#"data-destination="fwd/forward""#),
        "{}",
        page.body
    );
    let pause = row_action(&page, "fwd/ledger");
    assert_eq!(pause, "/destinations/fwd/ledger/pause");
    assert_eq!(browser.post(&pause, &[]).await.status, 403, "no CSRF token");
    let r = browser.post(&pause, &[("X-CSRF-Token", &csrf)]).await;
    assert_eq!(
        (r.status, r.json()["state"].as_str()),
        (200, Some("paused")),
        "{}",
        r.body
    );
    let page = browser.get("/console/destinations").await;
    let resume = row_action(&page, "fwd/ledger");
    assert_eq!(resume, "/destinations/fwd/ledger/resume");
    let r = browser.post(&resume, &[("X-CSRF-Token", &csrf)]).await;
    assert_eq!(r.json()["state"], "active", "{}", r.body);

    let page = browser
        .get(&format!("/console/events/fwd/evt_fan?{PAY}"))
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains(r#"id="deliveries""#), "{}", page.body);
    assert_eq!(
        row_action(&page, "forward"),
        "/webhooks/fwd/events/evt_fan/redeliver?type=payment_succeeded&destination=forward"
    );
    assert_eq!(
        page.action("redeliver"),
        "/webhooks/fwd/events/evt_fan/redeliver?type=payment_succeeded"
    );
    console.app.answer(Answer::Ok);
    let r = browser
        .post(&row_action(&page, "forward"), &[("X-CSRF-Token", &csrf)])
        .await;
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(
        r.json()["destinations"],
        serde_json::json!({"forward": "scheduled"})
    );
    console.app.wait_for_delivered(1, 30).await;
    assert_eq!(
        ledger.received().len(),
        1,
        "the ledger was not sent it again"
    );
    console.stop().await;
}
