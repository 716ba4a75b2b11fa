//! `/console/destinations`: every destination of every source, as `GET /destinations` lists
//! it (state, why it is paused, backlog, oldest pending), with Pause and Resume buttons that
//! call the admin API (`POST /destinations/<source>/<name>/pause|resume`) with the session's
//! CSRF token, like every other button of the console.

use maud::{html, Markup};
use rocket::{get, State};

use super::page::{age, encode, layout, when, Gate, Page};
use crate::operator::destinations::{DestinationState, DestinationView};
use crate::operator::Operator;
use crate::routes::auth::{NoSession, Session};

#[get("/console/destinations")]
pub async fn page(
    session: Result<Session, NoSession>,
    operator: &State<Operator>,
) -> Result<Page, Gate> {
    let session = session?;
    let body = match operator.destinations().await {
        Ok(list) => table(&list, session.may_operate()),
        Err(err) => html! { p.error role="alert" { "The destinations cannot be read: " (err) } },
    };
    Ok(Page::ok(layout("Destinations", Some(&session), body)))
}

/// `operate`: whether the buttons are shown (a `read` operator's would only be refused).
fn table(list: &[DestinationView], operate: bool) -> Markup {
    if list.is_empty() {
        return html! { p.empty { "No source forwards: no destination is configured." } };
    }
    html! {
        output #action-result {}
        table #destinations {
            thead { tr {
                th { "Source" } th { "Destination" } th { "State" } th { "Why" }
                th.num { "Pending" } th.num { "Dead" } th.num { "Oldest pending" }
                th { "Held until" } th {}
            } }
            tbody {
                @for d in list {
                    @let path = format!("/destinations/{}/{}", encode(&d.source), encode(&d.name));
                    tr data-destination={ (d.source) "/" (d.name) } {
                        td { (d.source) }
                        td { (d.name) }
                        td data-field="state" { (state(d.state)) }
                        td data-field="reason" {
                            @if let Some(reason) = d.paused_reason {
                                (reason)
                                @if let Some(at) = d.paused_at { " since " (when(at)) }
                            }
                        }
                        td.num data-field="pending" { (d.pending) }
                        td.num data-field="dead" { (d.dead) }
                        td.num data-field="oldest_pending" {
                            (d.oldest_pending_age_secs.map_or_else(|| "—".to_owned(), age))
                        }
                        td { (d.held_until.map(when).unwrap_or_default()) }
                        td { @if operate {
                            @match d.state {
                                DestinationState::Active => button.action.pause type="button"
                                    data-post={ (path) "/pause" }
                                    data-confirm={ "Pause " (d.name) " of " (d.source) "? Its deliveries wait, pending, until it is resumed." }
                                    { "Pause" },
                                DestinationState::Paused => button.action.resume type="button"
                                    data-post={ (path) "/resume" } { "Resume" },
                                DestinationState::Removed => button.action.danger.discard type="button"
                                    data-post={ (path) "/discard" }
                                    data-confirm={ "Discard the pending deliveries of " (d.name) " of " (d.source) "? They become dead, kept and redeliverable." }
                                    { "Discard pending" },
                            }
                        } }
                    }
                }
            }
        }
        p.hint {
            "A paused destination's deliveries wait, pending; none becomes dead. Paused by "
            "failures, it is probed and resumes on its own; paused by an operator or by a 410 "
            "Gone, only Resume ends it. A removed destination is no longer configured but still "
            "has deliveries."
        }
    }
}

fn state(state: DestinationState) -> &'static str {
    match state {
        DestinationState::Active => "active",
        DestinationState::Paused => "paused",
        DestinationState::Removed => "removed",
    }
}
