//! The console on the real binary, on every backend, one behaviour a test: sign-in and its
//! cookie, the pages, the overview's figures, and a hostile payload shown as text; what guards
//! a session's changes is [`guard`]. Each test starts from [`Console::start`]. (What a browser
//! does with the pages is `tests/browser/`, run by `.ci/run`.)

mod destinations;
mod guard;

use reqwest::header::{CONTENT_TYPE, LOCATION, SET_COOKIE};

use crate::support::*;

on_every_backend!(
    signed_out_the_console_leads_to_its_sign_in_form,
    sign_in_refuses_a_wrong_token_and_sets_a_strict_cookie,
    the_overview_counts_what_arrived,
    the_console_page_is_html_under_a_strict_policy,
    a_hostile_payload_is_shown_as_text,
    pages_refuse_a_bad_filter_and_a_missing_event,
);

/// Signed out: `/` leads to the console, the console to its sign-in form; the figures are 401.
async fn signed_out_the_console_leads_to_its_sign_in_form(backend: Backend) {
    let console = Console::start(backend).await;
    let browser = &console.browser;
    let r = browser.get("/").await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console"));
    let r = browser.get("/console").await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console/login"));
    let r = browser.get("/console/login").await;
    assert_eq!(r.status, 200);
    assert!(r.body.contains(r#"name="token""#), "{}", r.body);
    assert_eq!(browser.get("/console/overview.json").await.status, 401);
    console.stop().await;
}

/// A wrong token is 401 and sets no cookie. The right one sets an HttpOnly, SameSite=Strict
/// cookie, Secure over https (a proxy says so) and not over plain http, where it cannot be.
async fn sign_in_refuses_a_wrong_token_and_sets_a_strict_cookie(backend: Backend) {
    let console = Console::start(backend).await;
    let browser = &console.browser;
    let r = browser
        .form("/console/login", &[("token", "wrong")], &[])
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Wrong token"));
    assert!(r.headers.get(SET_COOKIE).is_none());
    let https = [("X-Forwarded-Proto", "https")];
    let r = browser
        .form("/console/login", &[("token", ADMIN_TOKEN)], &https)
        .await;
    assert!(
        r.header(SET_COOKIE).contains("Secure"),
        "{}",
        r.header(SET_COOKIE)
    );
    let r = browser
        .form("/console/login", &[("token", ADMIN_TOKEN)], &[])
        .await;
    assert_eq!((r.status, r.header(LOCATION)), (303, "/console"));
    let cookie = r.header(SET_COOKIE);
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "{cookie}");
    console.stop().await;
}

/// The overview counts new events, duplicates, refusals and dead deliveries, and has a row
/// for every configured source.
async fn the_overview_counts_what_arrived(backend: Backend) {
    let (console, _) = Console::signed_in(backend).await;
    let overview = console.traffic().await;
    let sources = overview["sources"].as_array().unwrap();
    let fwd = sources.iter().find(|s| s["source"] == "fwd").unwrap();
    assert_eq!(fwd["total"]["new"], 2, "{fwd}");
    assert_eq!(fwd["total"]["duplicates"], 1, "{fwd}");
    assert_eq!(fwd["total"]["refused"], 1, "{fwd}");
    assert_eq!(fwd["pending"], 0, "{fwd}");
    assert!(!fwd["minutes"].as_array().unwrap().is_empty());
    assert_eq!(
        sources.len(),
        5,
        "every configured source has a row: {overview}"
    );
    console.stop().await;
}

/// The console is HTML under a policy that runs only its own script and cannot be framed.
async fn the_console_page_is_html_under_a_strict_policy(backend: Backend) {
    let (console, _) = Console::signed_in(backend).await;
    let page = console.browser.get("/console").await;
    assert!(page.header(CONTENT_TYPE).starts_with("text/html"));
    let csp = page.header("content-security-policy");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert!(
        page.body.contains(r#"<tr data-source="fwd">"#),
        "{}",
        page.body
    );
    console.stop().await;
}

/// Markup in an event's id and payload is shown as text in the list and on its page.
async fn a_hostile_payload_is_shown_as_text(backend: Backend) {
    let (console, _) = Console::signed_in(backend).await;
    console.traffic().await;
    let list = console
        .browser
        .get("/console/events?source=fwd&type=&status=")
        .await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains("evt_&lt;b&gt;bold&lt;/b&gt;"),
        "{}",
        list.body
    );
    assert!(!list.body.contains("<b>bold"), "{}", list.body);
    let event = console
        .browser
        .get(&format!(
            "/console/events/fwd/evt_%3Cb%3Ebold%3C%2Fb%3E?{PAY}"
        ))
        .await;
    assert_eq!(event.status, 200, "{}", event.body);
    assert!(!event.body.contains("<script>window"), "{}", event.body);
    assert!(!event.body.contains("<img"), "{}", event.body);
    let shown = "&lt;script&gt;window.pwned = 1&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;";
    assert!(event.body.contains(shown), "{}", event.body);
    console.stop().await;
}

/// An unknown status filter is 400, naming the choices; an unknown event's page is 404.
async fn pages_refuse_a_bad_filter_and_a_missing_event(backend: Backend) {
    let (console, _) = Console::signed_in(backend).await;
    let bad = console.browser.get("/console/events?status=done").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("`status` must be one of"), "{}", bad.body);
    let missing = console
        .browser
        .get(&format!("/console/events/fwd/nope?{PAY}"))
        .await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    console.stop().await;
}

/// Without `IDEMHOOK_ADMIN_TOKEN` the console says how to enable it, and signs nobody in.
#[tokio::test]
async fn without_a_token_the_console_says_how_to_enable_it() {
    let db = TestDb::create(Backend::Sqlite).await;
    let env: Vec<(&str, &str)> = ENV.to_vec();
    let server = Server::start(&config(&db.url, ""), &env).await;
    let browser = Browser::new(&server);
    for r in [
        browser.get("/console").await,
        browser.get("/console/login").await,
        browser.form("/console/login", &[("token", "")], &[]).await,
    ] {
        assert_eq!(r.status, 403, "{}", r.body);
        assert!(r.body.contains("IDEMHOOK_ADMIN_TOKEN"), "{}", r.body);
        assert!(r.headers.get(SET_COOKIE).is_none());
    }
    drop(server);
    db.drop_db().await;
}
