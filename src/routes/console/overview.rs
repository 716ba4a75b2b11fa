//! The overview: per source, the last hour's traffic (from [`crate::activity`], in memory)
//! and the outbox's backlog (from the database), as a table rendered on the server and
//! refreshed by the console's script, with a chart of the last hour.

use std::sync::Arc;

use maud::{html, Markup};
use rocket::serde::json::Json;
use rocket::{get, State};
use serde::Serialize;

use super::page::{age, layout, Gate, Page};
use crate::activity::{Activity, Counts};
use crate::operator::Operator;
use crate::routes::auth::{NoSession, Session};
use crate::routes::error::ApiError;

/// One source's row.
#[derive(Serialize)]
pub struct Row {
    pub source: String,
    pub per_minute: f64,
    /// The last hour, the minute in progress included.
    pub total: Counts,
    pub pending: u64,
    pub dead: u64,
    /// Age of the oldest pending delivery, in seconds.
    pub oldest_pending_secs: Option<i64>,
    /// Per minute, oldest first, for the chart.
    pub minutes: Vec<Counts>,
}

#[derive(Serialize)]
pub struct Overview {
    /// The start of each minute of the chart (RFC 3339), oldest first.
    pub starts: Vec<String>,
    pub sources: Vec<Row>,
}

async fn overview(activity: &Activity, operator: &Operator) -> Result<Overview, ApiError> {
    let hour = activity.last_hour();
    let backlogs = operator.backlogs().await?;
    let now = operator.now();
    let sources = hour
        .sources
        .into_iter()
        .map(|s| {
            let backlog = backlogs.get(&s.source).cloned().unwrap_or_default();
            Row {
                per_minute: s.per_minute,
                total: s.total,
                pending: backlog.pending,
                dead: backlog.dead,
                oldest_pending_secs: backlog
                    .oldest_pending
                    .map(|t| (now - t).num_seconds().max(0)),
                minutes: s.minutes,
                source: s.source,
            }
        })
        .collect();
    Ok(Overview {
        starts: hour.starts,
        sources,
    })
}

/// The figures the script refreshes the page with.
#[get("/console/overview.json")]
pub async fn overview_json(
    session: Result<Session, NoSession>,
    activity: &State<Arc<Activity>>,
    operator: &State<Operator>,
) -> Result<Json<Overview>, ApiError> {
    if session.is_err() {
        return Err(ApiError::Unauthorized("sign in to the console".into()));
    }
    Ok(Json(overview(activity, operator).await?))
}

#[get("/console")]
pub async fn page(
    session: Result<Session, NoSession>,
    activity: &State<Arc<Activity>>,
    operator: &State<Operator>,
) -> Result<Page, Gate> {
    let session = session?;
    let body = match overview(activity, operator).await {
        Ok(overview) => table(&overview),
        Err(err) => html! { p.error role="alert" { "The overview cannot be read: " (err) } },
    };
    Ok(Page::ok(layout("Overview", Some(&session), body)))
}

fn table(overview: &Overview) -> Markup {
    html! {
        section.chart {
            h2 { "Last hour, all sources (events per minute)" }
            div #chart data-src="/console/overview.json" {
                noscript { "The chart needs JavaScript; the table below does not." }
            }
            p.legend {
                span.key.new { "new" } span.key.duplicates { "duplicates" }
                span.key.failed { "failed or rejected" }
            }
        }
        table #sources {
            thead { tr {
                th { "Source" } th.num { "Events/min" } th.num { "New" } th.num { "Duplicates" }
                th.num { "Failed" } th.num { "Rejected" } th.num { "Refused" } th.num { "Overloaded" }
                th.num { "Pending" } th.num { "Dead" } th.num { "Oldest pending" }
            } }
            tbody {
                @for row in &overview.sources {
                    tr data-source=(row.source) {
                        td { a href={ "/console/events?source=" (super::page::encode(&row.source)) } { (row.source) } }
                        td.num data-field="per_minute" { (format!("{:.1}", row.per_minute)) }
                        td.num data-field="new" { (row.total.new) }
                        td.num data-field="duplicates" { (row.total.duplicates) }
                        td.num data-field="failed" { (row.total.failed) }
                        td.num data-field="rejected" { (row.total.rejected) }
                        td.num data-field="refused" { (row.total.refused) }
                        td.num data-field="overloaded" { (row.total.overloaded) }
                        td.num data-field="pending" { (row.pending) }
                        td.num data-field="dead" {
                            @if row.dead > 0 {
                                a href={ "/console/dead?source=" (super::page::encode(&row.source)) } { (row.dead) }
                            } @else { "0" }
                        }
                        td.num data-field="oldest_pending" {
                            (row.oldest_pending_secs.map_or_else(|| "—".to_owned(), age))
                        }
                    }
                }
            }
        }
        p.hint {
            "Counts cover the last hour on this instance (kept in memory, reset on restart); "
            "pending and dead deliveries are read from the database."
        }
    }
}
