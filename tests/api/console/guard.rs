//! What guards a signed-in session: every change a cookie makes (replay, redeliver, redrive,
//! sign-out) needs the page's CSRF token, and a tampered cookie is no session at all.

use reqwest::header::{LOCATION, SET_COOKIE};

use crate::support::*;

on_every_backend!(
    every_change_by_cookie_needs_the_csrf_token,
    a_tampered_cookie_is_signed_out,
    sign_out_needs_the_csrf_token,
);

/// The admin API takes the cookie; each change the console's buttons post (replay and
/// redeliver on an event's page, redrive on the dead list) is 403 without the page's CSRF
/// token or with a wrong one, and changes nothing; with the token it is done.
async fn every_change_by_cookie_needs_the_csrf_token(backend: Backend) {
    let (console, csrf) = Console::signed_in(backend).await;
    let browser = &console.browser;
    console.traffic().await;
    assert_eq!(browser.get("/events?source=fwd").await.status, 200);
    let event = browser
        .get(&format!("/console/events/fwd/evt_1?{PAY}"))
        .await;
    let dead = browser.get("/console/dead?source=fwd").await;
    let redrive = dead.action("redrive");
    assert_eq!(redrive, "/deliveries/redrive?source=fwd&status=dead");
    // Redeliver first: a redrive job, or a replay (which schedules a fresh delivery), would
    // leave evt_1's delivery pending, and redelivering a pending delivery is 409.
    let actions = [
        ("redeliver", event.action("redeliver"), 202),
        ("redrive", redrive, 202),
        ("replay", event.action("replay"), 200),
    ];
    for (name, path, _) in &actions {
        let r = browser.post(path, &[]).await;
        assert_eq!(r.status, 403, "{name} without a token: {}", r.body);
        assert!(
            r.json()["error"].as_str().unwrap().contains("CSRF"),
            "{}",
            r.body
        );
        let r = browser.post(path, &[("X-CSRF-Token", "0000")]).await;
        assert_eq!(r.status, 403, "{name} with a wrong token: {}", r.body);
    }
    let detail = browser
        .get(&format!("/webhooks/fwd/events/evt_1?{PAY}"))
        .await
        .json();
    assert_eq!(detail["delivery"]["status"], "dead", "{detail}");
    assert_eq!(detail["replays"], serde_json::json!([]), "{detail}");
    console.app.answer(Answer::Ok);
    for (name, path, accepted) in &actions {
        let r = browser.post(path, &[("X-CSRF-Token", &csrf)]).await;
        assert_eq!(r.status, *accepted, "{name} with the token: {}", r.body);
    }
    console.stop().await;
}

/// A cookie whose signed time or operator was changed is signed out, as is no cookie.
async fn a_tampered_cookie_is_signed_out(backend: Backend) {
    let (mut console, _) = Console::signed_in(backend).await;
    let real = console.browser.cookie.clone().unwrap();
    // `idemhook_session=<operator>.<issued>.<mac>`
    let (name, value) = real.split_once('=').unwrap();
    let mut parts = value.splitn(3, '.');
    let (operator, issued, mac) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    assert_eq!(operator, "admin");
    let later = issued.parse::<i64>().unwrap() + 60;
    console.browser.cookie = Some(format!("{name}={operator}.{later}.{mac}"));
    assert_eq!(console.browser.get("/console").await.status, 303);
    // Another operator's name on admin's signature.
    console.browser.cookie = Some(format!("{name}=alice.{issued}.{mac}"));
    assert_eq!(console.browser.get("/console").await.status, 303);
    assert_eq!(console.browser.get("/events").await.status, 401);
    console.browser.cookie = None;
    assert_eq!(console.browser.get("/events").await.status, 401);
    console.stop().await;
}

/// Sign-out needs the token too: a cross-site form cannot sign an operator out.
async fn sign_out_needs_the_csrf_token(backend: Backend) {
    let (console, csrf) = Console::signed_in(backend).await;
    let browser = &console.browser;
    let r = browser.form("/console/logout", &[("csrf", "x")], &[]).await;
    assert_eq!(r.status, 403);
    assert_eq!(browser.get("/console").await.status, 200, "still signed in");
    let r = browser
        .form("/console/logout", &[("csrf", &csrf)], &[])
        .await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console/login"));
    assert!(
        r.header(SET_COOKIE).contains("idemhook_session=;"),
        "{}",
        r.header(SET_COOKIE)
    );
    console.stop().await;
}
