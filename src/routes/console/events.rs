//! The event pages: the list with `GET /events`'s filters, dead deliveries with a Redrive
//! button, and one event with Replay / Redeliver buttons. The pages read through the same
//! functions as the admin API; the buttons call the admin API itself (the console's script
//! adds the session's CSRF token).

use maud::{html, Markup};
use rocket::http::uri::Origin;
use rocket::{get, State};

use super::page::{api_path, encode, event_href, layout, when, Gate, Page};
use crate::operator::filter::{ListQuery, Status};
use crate::operator::view::{Attempt, EventDetail, EventPage};
use crate::operator::Operator;
use crate::routes::admin::events::key_of;
use crate::routes::auth::{NoSession, Session};
use crate::routes::error::ApiError;
use crate::status::{DeliveryStatus, EventStatus};

/// The query without its empty parameters (a submitted filter form sends every field), and
/// without `drop`.
fn filled(query: Option<&str>, drop: &[&str]) -> String {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(name, value)| !value.is_empty() && !drop.contains(&name.as_ref()))
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

/// The value of `name` in an (already filled) query.
fn value_of(query: &str, name: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn with(query: &str, extra: &str) -> String {
    match (query.is_empty(), extra.is_empty()) {
        (true, _) => extra.to_owned(),
        (_, true) => query.to_owned(),
        _ => format!("{query}&{extra}"),
    }
}

async fn read_page(operator: &Operator, query: &str) -> Result<EventPage, ApiError> {
    let query = ListQuery::parse(Some(query).filter(|q| !q.is_empty()))?;
    Ok(operator.page(&query).await?)
}

fn filter_form(action: &str, query: &str, with_status: bool) -> Markup {
    let statuses = Status::ALL.map(Status::as_str);
    let status = value_of(query, "status");
    html! {
        form.filters method="get" action=(action) {
            label { "Source " input name="source" value=(value_of(query, "source")); }
            label { "Type " input name="type" value=(value_of(query, "type")); }
            @if with_status {
                label { "Status "
                    select name="status" {
                        option value="" { "any" }
                        @for s in statuses {
                            option value=(s) selected[status == s] { (s) }
                        }
                    }
                }
            }
            label { "Since " input name="since" placeholder="2026-11-29T10:00:00Z" value=(value_of(query, "since")); }
            label { "Until " input name="until" placeholder="RFC 3339" value=(value_of(query, "until")); }
            button type="submit" { "Filter" }
        }
    }
}

fn events_table(page: &EventPage, action: &str, query: &str) -> Markup {
    html! {
        @if page.events.is_empty() {
            p.empty { "No events match." }
        } @else {
            table #events {
                thead { tr {
                    th { "Received" } th { "Source" } th { "Type" } th { "Event id" }
                    th { "Status" } th.num { "Attempts" } th { "Delivery" }
                } }
                tbody {
                    @for e in &page.events {
                        tr {
                            td { (when(e.received_at)) }
                            td { (e.source) }
                            td { (e.event_type) }
                            td { a href=(event_href(&e.source, &e.event_type, &e.event_id)) { (e.event_id) } }
                            td { span class={ "status " (e.status) } { (e.status) } }
                            td.num { (e.attempts) }
                            td { @if let Some(d) = &e.delivery { span class={ "status " (d.status) } { (d.status) } } }
                        }
                    }
                }
            }
        }
        @if let Some(cursor) = &page.next_cursor {
            a.next href={ (action) "?" (with(query, &format!("cursor={}", encode(cursor)))) } { "Next page →" }
        }
    }
}

fn failure(session: &Session, title: &str, err: &ApiError) -> Page {
    Page {
        status: err.status(),
        markup: layout(
            title,
            Some(session),
            html! { p.error role="alert" { (err) } },
        ),
    }
}

#[get("/console/events")]
pub async fn list(
    session: Result<Session, NoSession>,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<Page, Gate> {
    listing(session?, uri, operator, None).await
}

#[get("/console/dead")]
pub async fn dead(
    session: Result<Session, NoSession>,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<Page, Gate> {
    listing(session?, uri, operator, Some(Status::Dead.as_str())).await
}

/// The list page, or with `status` fixed (dead deliveries) the same list with no status
/// filter of its own and a Redrive button for what it shows.
async fn listing(
    session: Session,
    uri: &Origin<'_>,
    operator: &Operator,
    status: Option<&str>,
) -> Result<Page, Gate> {
    let (title, action) = match status {
        None => ("Events", "/console/events"),
        Some(_) => ("Dead deliveries", "/console/dead"),
    };
    let fixed = status.map(|s| format!("status={s}")).unwrap_or_default();
    let drop: &[&str] = if status.is_some() { &["status"] } else { &[] };
    let query = filled(uri.query().map(|q| q.as_str()), drop);
    let shown = filled(Some(&query), &["cursor"]);
    let page = match read_page(operator, &with(&query, &fixed)).await {
        Ok(page) => page,
        Err(err) => return Ok(failure(&session, title, &err)),
    };
    let redrive = format!("/deliveries/redrive?{}", with(&shown, &fixed));
    let body = html! {
        (filter_form(action, &shown, status.is_none()))
        @if status.is_some() && !page.events.is_empty() {
            p.actions {
                button.action #redrive type="button" data-post=(redrive) data-job="true"
                    data-confirm="Schedule a new round of attempts for every dead delivery these filters match?" {
                    "Redrive all that match"
                }
                output #action-result {}
            }
        }
        (events_table(&page, action, &shown))
    };
    Ok(Page::ok(layout(title, Some(&session), body)))
}

#[get("/console/events/<source>/<event_id>")]
pub async fn event(
    session: Result<Session, NoSession>,
    source: &str,
    event_id: &str,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<Page, Gate> {
    let session = session?;
    let found = async {
        let (key, _) = key_of(source, event_id, uri, &[])?;
        operator
            .detail(&key.digest())
            .await?
            .ok_or_else(|| ApiError::NotFound("no such event".into()))
    };
    Ok(match found.await {
        Ok(detail) => Page::ok(layout("Event", Some(&session), event_body(&detail))),
        Err(err) => failure(&session, "Event", &err),
    })
}

fn event_body(d: &EventDetail) -> Markup {
    let s = &d.summary;
    let api = api_path(&s.source, &s.event_id);
    let type_q = format!("type={}", encode(&s.event_type));
    html! {
        dl.key {
            dt { "Source" } dd { (s.source) }
            dt { "Type" } dd { (s.event_type) }
            dt { "Event id" } dd #event-id { (s.event_id) }
            dt { "Status" } dd { span #status class={ "status " (s.status) } { (s.status) }
                @if let Some(reason) = &s.reason { " — " (reason) } }
            dt { "Received" } dd { (when(s.received_at)) }
            dt { "Processed" } dd { (s.processed_at.map(when).unwrap_or_default()) }
            dt { "Attempts" } dd { (s.attempts) }
            @if let Some(err) = &s.last_error { dt { "Last error" } dd { (err) } }
            dt { "Payload SHA-256" } dd { code { (s.payload_sha256) } }
            @let m = &s.payload_mismatches;
            @if m.count > 0 {
                dt { "Payload mismatches" }
                dd #payload-mismatches {
                    (m.count) " duplicate(s) with another body, not applied; last "
                    code { (m.last_mismatch_sha256.as_deref().unwrap_or_default()) }
                    " at " (m.last_mismatch_at.map(when).unwrap_or_default())
                }
            }
        }
        p.actions {
            @match s.status {
                EventStatus::Rejected | EventStatus::Failed => {
                    button.action #replay type="button" data-post={ (api) "/replay?" (type_q) } { "Replay" }
                }
                _ => {
                    button.action.danger #replay type="button" data-post={ (api) "/replay?" (type_q) "&force=true" }
                        data-confirm="This event is processed. Replaying it runs its handlers again: a handler that is not idempotent (payments) applies it twice. Replay anyway?" {
                        "Force replay"
                    }
                }
            }
            @if s.delivery.as_ref().is_some_and(|d| d.status != DeliveryStatus::Pending) {
                button.action #redeliver type="button" data-post={ (api) "/redeliver?" (type_q) } { "Redeliver" }
            }
            output #action-result {}
        }
        @if let Some(del) = &s.delivery {
            h2 { "Delivery" }
            dl.delivery {
                dt { "Status" } dd { span #delivery-status class={ "status " (del.status) } data-api={ (api) "?" (type_q) } { (del.status) } }
                dt { "Idempotency-Key" } dd { code { (del.idempotency_key) } }
                dt { "Attempts" } dd { (del.attempts) }
                @if let Some(code) = del.last_status { dt { "Last answer" } dd { (code) } }
                @if let Some(err) = &del.last_error { dt { "Last error" } dd { (err) } }
                @if let Some(at) = del.next_attempt_at { dt { "Next attempt" } dd { (when(at)) } }
                @if let Some(at) = del.delivered_at { dt { "Delivered" } dd { (when(at)) } }
            }
        }
        h2 { "Payload" }
        @match &d.payload {
            Some(payload) => {
                p.hint { "As received, kept in the " (d.payload_from.as_deref().unwrap_or("store").replace('_', " ")) "." }
                pre.payload #payload { (pretty(payload)) }
            }
            None => p.empty { "idemhook kept no payload for this event." },
        }
        (attempts("Handler attempts", &d.handler_attempts))
        (attempts("Delivery attempts", &d.delivery_attempts))
        @if !d.replays.is_empty() {
            h2 { "Replays" }
            table.replays {
                thead { tr { th { "At" } th { "Was" } th { "Forced" } th { "Operator" } th { "Job" } } }
                tbody { @for r in &d.replays { tr {
                    td { (when(r.replayed_at)) } td { (r.previous_status) }
                    td { (if r.forced { "yes" } else { "no" }) } td { (r.operator) }
                    td { (r.job_id.map(|j| j.to_string()).unwrap_or_default()) }
                } } }
            }
        }
    }
}

fn attempts(title: &str, list: &[Attempt]) -> Markup {
    html! {
        h2 { (title) }
        @if list.is_empty() {
            p.empty { "None recorded." }
        } @else {
            table.attempts {
                thead { tr { th { "At" } th { "Outcome" } th.num { "Status" } th { "Error" } } }
                tbody { @for a in list { tr {
                    td { (when(a.at)) } td { (a.outcome) }
                    td.num { (a.status_code.map(|c| c.to_string()).unwrap_or_default()) }
                    td { (a.error.as_deref().unwrap_or_default()) }
                } } }
            }
        }
    }
}

/// JSON re-indented, every token kept as it was sent (key order, number digits, escapes: what
/// the provider signed, not a re-serialization of it); anything else as it is. Escaped for
/// HTML by the caller.
fn pretty(payload: &str) -> String {
    if serde_json::from_str::<serde::de::IgnoredAny>(payload).is_err() {
        return payload.to_owned();
    }
    let mut out = String::with_capacity(payload.len() * 2);
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.push_str(&"  ".repeat(depth));
    };
    let mut chars = payload.chars().peekable();
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.extend(chars.next());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_filters_are_dropped_and_the_rest_kept_encoded() {
        assert_eq!(
            filled(
                Some("source=&type=order%20paid&status=&cursor=abc"),
                &["cursor"]
            ),
            "type=order+paid"
        );
        assert_eq!(value_of("type=order+paid", "type"), "order paid");
        assert_eq!(with("", "status=dead"), "status=dead");
        assert_eq!(with("source=a", "status=dead"), "source=a&status=dead");
    }

    #[test]
    fn payloads_are_pretty_printed_when_json() {
        assert_eq!(pretty(r#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(
            pretty(r#"{"z": [1.50, {}, []], "a\"b": "x, {y}: z", "n": 12345678901234567890123}"#),
            "{\n  \"z\": [\n    1.50,\n    {},\n    []\n  ],\n  \"a\\\"b\": \"x, {y}: z\",\n  \"n\": 12345678901234567890123\n}"
        );
        assert_eq!(pretty("not json <b>"), "not json <b>");
    }
}
