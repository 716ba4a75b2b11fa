//! The list pages: events with `GET /events`'s filters, and dead deliveries with a Redrive
//! button (one event's page is [`super::event`]). The pages read through the same
//! functions as the admin API; the buttons call the admin API itself (the console's script
//! adds the session's CSRF token).

use maud::{html, Markup};
use rocket::http::uri::Origin;
use rocket::{get, State};

use super::page::{encode, event_href, layout, when, Gate, Page};
use crate::operator::filter::{ListQuery, Status};
use crate::operator::view::EventPage;
use crate::operator::Operator;
use crate::routes::auth::{NoSession, Session};
use crate::routes::error::ApiError;

/// The query without its empty parameters (a submitted filter form sends every field), and
/// without `drop`.
pub(super) fn filled(query: Option<&str>, drop: &[&str]) -> String {
    let kept: Vec<(String, String)> = url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .filter(|(name, value)| !value.is_empty() && !drop.contains(&name.as_ref()))
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(kept)
        .finish()
}

/// The value of `name` in an (already filled) query.
pub(super) fn value_of(query: &str, name: &str) -> String {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

pub(super) fn with(query: &str, extra: &str) -> String {
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
                            td { @for d in &e.deliveries {
                                span class={ "status " (d.status) } title=(d.destination) { (d.status) } " "
                            } }
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

pub(super) fn failure(session: &Session, title: &str, err: &ApiError) -> Page {
    Page {
        status: err.status(),
        retry_after: None,
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
        @if status.is_some() && !page.events.is_empty() && session.may_operate() {
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
}
