//! `/console/audit`: who changed what, newest first, as `GET /audit` lists it, with its
//! operator, action and time filters. Every operator sees it, `read` included.

use maud::{html, Markup};
use rocket::http::uri::Origin;
use rocket::{get, State};

use super::events::{failure, filled, value_of, with};
use super::page::{encode, layout, Gate, Page};
use crate::operator::audit::{Action, AuditPage, AuditQuery};
use crate::operator::Operator;
use crate::routes::auth::{NoSession, Session};
use crate::routes::error::ApiError;

#[get("/console/audit")]
pub async fn page(
    session: Result<Session, NoSession>,
    uri: &Origin<'_>,
    operator: &State<Operator>,
) -> Result<Page, Gate> {
    let session = session?;
    let query = filled(uri.query().map(|q| q.as_str()), &[]);
    let read = async {
        let parsed = AuditQuery::parse(Some(query.as_str()).filter(|q| !q.is_empty()))?;
        Ok::<_, ApiError>(operator.audit(&parsed).await?)
    };
    let page = match read.await {
        Ok(page) => page,
        Err(err) => return Ok(failure(&session, "Audit", &err)),
    };
    let shown = filled(Some(&query), &["cursor"]);
    let body = html! {
        (filters(&shown))
        (entries(&page, &shown))
    };
    Ok(Page::ok(layout("Audit", Some(&session), body)))
}

fn filters(query: &str) -> Markup {
    let action = value_of(query, "action");
    html! {
        form.filters method="get" action="/console/audit" {
            label { "Operator " input name="operator" value=(value_of(query, "operator")); }
            label { "Action "
                select name="action" {
                    option value="" { "any" }
                    @for a in Action::ALL {
                        option value=(a.as_str()) selected[action == a.as_str()] { (a.as_str()) }
                    }
                }
            }
            label { "Since " input name="since" placeholder="2026-11-29T10:00:00Z" value=(value_of(query, "since")); }
            label { "Until " input name="until" placeholder="RFC 3339" value=(value_of(query, "until")); }
            button type="submit" { "Filter" }
        }
    }
}

fn entries(page: &AuditPage, query: &str) -> Markup {
    html! {
        @if page.entries.is_empty() {
            p.empty { "No entries match." }
        } @else {
            table #audit {
                thead { tr {
                    th { "At" } th { "Operator" } th { "On behalf of" } th { "Action" }
                    th { "Target" } th { "Parameters" } th { "Outcome" } th { "Client" }
                    th.num { "Count" }
                } }
                tbody {
                    @for e in &page.entries {
                        tr {
                            td { (e.at) }
                            td { (e.operator.as_deref().unwrap_or("—")) }
                            td { (e.on_behalf_of.as_deref().unwrap_or("")) }
                            td { (e.action) }
                            td { code { (e.target) } }
                            td { code { (e.params) } }
                            td { span class={ "outcome " (e.outcome) } { (e.outcome) } }
                            td { (e.client.as_deref().unwrap_or("")) }
                            td.num { (e.count) }
                        }
                    }
                }
            }
        }
        @if let Some(cursor) = &page.next_cursor {
            a.next href={ "/console/audit?" (with(query, &format!("cursor={}", encode(cursor)))) } { "Next page →" }
        }
    }
}
