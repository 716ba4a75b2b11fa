//! One event's page: its record, its deliveries (one per destination) with Replay and
//! Redeliver buttons, its payload as received, and its attempts and replays. It reads through
//! the same functions as the admin API; the buttons call the admin API itself (the console's
//! script adds the session's CSRF token).

use maud::{html, Markup};
use rocket::http::uri::Origin;
use rocket::{get, State};

use super::events::failure;
use super::page::{api_path, encode, layout, when, Gate, Page};
use crate::operator::delivery_view::DeliverySummary;
use crate::operator::view::{Attempt, EventDetail};
use crate::operator::Operator;
use crate::routes::admin::events::key_of;
use crate::routes::auth::{NoSession, Session};
use crate::routes::error::ApiError;
use crate::status::{DeliveryStatus, EventStatus};

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
        Ok(detail) => Page::ok(layout(
            "Event",
            Some(&session),
            event_body(&detail, session.may_operate()),
        )),
        Err(err) => failure(&session, "Event", &err),
    })
}

/// `operate`: whether the buttons are shown (a `read` operator's would only be refused).
fn event_body(d: &EventDetail, operate: bool) -> Markup {
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
        @if operate { p.actions {
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
            @if s.deliveries.iter().any(|d| d.status != DeliveryStatus::Pending) {
                button.action #redeliver type="button" data-post={ (api) "/redeliver?" (type_q) } {
                    @if s.deliveries.len() > 1 { "Redeliver to every destination" } @else { "Redeliver" }
                }
            }
            output #action-result {}
        } }
        @if s.deliveries.len() > 1 {
            (deliveries(&s.deliveries, &api, &type_q, operate))
        } @else if let Some(del) = s.deliveries.first() {
            h2 { "Delivery to " (del.destination) }
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

/// An event's deliveries to several destinations: one row each, with its own Redeliver.
fn deliveries(list: &[DeliverySummary], api: &str, type_q: &str, operate: bool) -> Markup {
    html! {
        h2 { "Deliveries" }
        table #deliveries {
            thead { tr {
                th { "Destination" } th { "Status" } th.num { "Attempts" } th.num { "Last answer" }
                th { "Last error" } th { "Next attempt / delivered" } th {}
            } }
            tbody { @for d in list { tr data-destination=(d.destination) {
                td { (d.destination) }
                td { span class={ "status " (d.status) } data-field="status" { (d.status) } }
                td.num { (d.attempts) }
                td.num { (d.last_status.map(|c| c.to_string()).unwrap_or_default()) }
                td { (d.last_error.as_deref().unwrap_or_default()) }
                td { (d.next_attempt_at.or(d.delivered_at).map(when).unwrap_or_default()) }
                td { @if operate && d.status != DeliveryStatus::Pending {
                    button.action type="button"
                        data-post={ (api) "/redeliver?" (type_q) "&destination=" (encode(&d.destination)) }
                        { "Redeliver" }
                } }
            } } }
        }
        @if let Some(d) = list.first() {
            p.hint { "Idempotency-Key, the same at every destination: " code { (d.idempotency_key) } }
        }
    }
}

fn attempts(title: &str, list: &[Attempt]) -> Markup {
    let by_destination = list.iter().any(|a| a.destination.is_some());
    html! {
        h2 { (title) }
        @if list.is_empty() {
            p.empty { "None recorded." }
        } @else {
            table.attempts {
                thead { tr {
                    th { "At" } @if by_destination { th { "Destination" } }
                    th { "Outcome" } th.num { "Status" } th { "Error" }
                } }
                tbody { @for a in list { tr {
                    td { (when(a.at)) }
                    @if by_destination { td { (a.destination.as_deref().unwrap_or_default()) } }
                    td { (a.outcome) }
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
    fn payloads_are_pretty_printed_when_json() {
        assert_eq!(pretty(r#"{"a":1}"#), "{\n  \"a\": 1\n}");
        assert_eq!(
            pretty(r#"{"z": [1.50, {}, []], "a\"b": "x, {y}: z", "n": 12345678901234567890123}"#),
            "{\n  \"z\": [\n    1.50,\n    {},\n    []\n  ],\n  \"a\\\"b\": \"x, {y}: z\",\n  \"n\": 12345678901234567890123\n}"
        );
        assert_eq!(pretty("not json <b>"), "not json <b>");
    }
}
