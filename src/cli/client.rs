//! The operator commands: each one request (or a job followed to its end) to a running
//! server's admin API, with the token from `IDEMHOOK_TOKEN` (an operator's), else
//! `IDEMHOOK_ADMIN_TOKEN`.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use serde_json::Value;

use super::render;
use super::{AuditArgs, DestinationsAction, EventsAction, Failure, FilterArgs, Remote, ReplayArgs};

/// How often a followed job is asked for its progress.
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

struct Api {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Api {
    fn new(remote: &Remote) -> Result<Api, Failure> {
        // An operator's own token first; the admin token for those who have only that.
        let token = ["IDEMHOOK_TOKEN", "IDEMHOOK_ADMIN_TOKEN"]
            .iter()
            .find_map(|var| std::env::var(var).ok().filter(|t| !t.trim().is_empty()))
            .ok_or_else(|| {
                Failure(
                    "set IDEMHOOK_TOKEN to your operator's token (or IDEMHOOK_ADMIN_TOKEN to the \
                     server's admin token)"
                        .into(),
                )
            })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Failure(format!("cannot build an HTTP client: {e}")))?;
        Ok(Api {
            base: remote.url.trim_end_matches('/').to_owned(),
            token,
            http,
        })
    }

    /// Sends the request and returns the JSON of a 2xx; anything else is a [`Failure`] that
    /// carries the server's own `error` message.
    async fn send(&self, method: reqwest::Method, path_and_query: &str) -> Result<Value, Failure> {
        let url = format!("{}{path_and_query}", self.base);
        let operator =
            std::env::var("USER").map_or_else(|_| "cli".into(), |u| format!("{u} (cli)"));
        let response = self
            .http
            .request(method, &url)
            .bearer_auth(&self.token)
            .header("Idemhook-Operator", operator)
            .send()
            .await
            .map_err(|e| Failure(format!("cannot reach {}: {e}", self.base)))?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"].as_str().unwrap_or("no error message");
        Err(Failure(format!("the server answered {status}: {message}")))
    }
}

fn encode(s: &str) -> String {
    utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
}

/// `?a=1&b=2` from the pairs that are set.
fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", encode(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

fn filter_pairs<'a>(
    f: &'a FilterArgs,
    status: Option<&'a str>,
) -> Vec<(&'static str, Option<&'a str>)> {
    vec![
        ("source", f.source.as_deref()),
        ("type", f.event_type.as_deref()),
        ("status", status),
        ("since", f.since.as_deref()),
        ("until", f.until.as_deref()),
        ("destination", f.destination.as_deref()),
    ]
}

fn event_path(source: &str, event_id: &str) -> String {
    format!("/webhooks/{}/events/{}", encode(source), encode(event_id))
}

pub async fn events(action: EventsAction) -> Result<(), Failure> {
    match action {
        EventsAction::List {
            filters,
            status,
            limit,
            cursor,
            json,
            remote,
        } => {
            let api = Api::new(&remote)?;
            let limit = limit.to_string();
            let mut pairs = filter_pairs(&filters, status.as_deref());
            pairs.push(("limit", Some(&limit)));
            pairs.push(("cursor", cursor.as_deref()));
            let page = api
                .send(reqwest::Method::GET, &format!("/events{}", query(&pairs)))
                .await?;
            if json {
                println!("{page}");
            } else {
                print!("{}", render::events_table(&page));
            }
            Ok(())
        }
        EventsAction::Show {
            source,
            event_type,
            event_id,
            remote,
        } => {
            let api = Api::new(&remote)?;
            let path = format!(
                "{}{}",
                event_path(&source, &event_id),
                query(&[("type", Some(&event_type))])
            );
            let event = api.send(reqwest::Method::GET, &path).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&event).unwrap_or_default()
            );
            Ok(())
        }
    }
}

pub async fn replay(args: ReplayArgs) -> Result<(), Failure> {
    let api = Api::new(&args.remote)?;
    if args.all {
        let pairs = filter_pairs(&args.filters, args.status.as_deref());
        let job = api
            .send(
                reqwest::Method::POST,
                &format!("/events/replay{}", query(&pairs)),
            )
            .await?;
        return follow(&api, job, args.no_wait, "replayed").await;
    }
    let [source, event_type, event_id] = <[String; 3]>::try_from(args.key)
        .map_err(|_| Failure("give SOURCE TYPE ID, or --all".into()))?;
    let force = args.force.then_some("true");
    let path = format!(
        "{}/replay{}",
        event_path(&source, &event_id),
        query(&[("type", Some(&event_type)), ("force", force)])
    );
    let answer = api.send(reqwest::Method::POST, &path).await?;
    println!(
        "replayed {source} {event_type} {event_id}: processed (was {}{})",
        answer["previous_status"].as_str().unwrap_or("?"),
        if answer["forced"] == true {
            ", forced"
        } else {
            ""
        }
    );
    Ok(())
}

pub async fn redrive(filters: FilterArgs, remote: Remote, no_wait: bool) -> Result<(), Failure> {
    let api = Api::new(&remote)?;
    let pairs = filter_pairs(&filters, None);
    let job = api
        .send(
            reqwest::Method::POST,
            &format!("/deliveries/redrive{}", query(&pairs)),
        )
        .await?;
    follow(&api, job, no_wait, "rescheduled").await
}

/// Follows a job with a progress bar (on a terminal) until it ends, then prints its summary.
/// A job that ends `failed`, or with items that failed, is a failure of the command.
async fn follow(api: &Api, mut job: Value, no_wait: bool, verb: &str) -> Result<(), Failure> {
    let id = job["id"]
        .as_i64()
        .ok_or_else(|| Failure("the server answered no job id".into()))?;
    if no_wait {
        println!("{job}");
        return Ok(());
    }
    let count = |j: &Value, k: &str| j[k].as_u64().unwrap_or(0);
    let bar = ProgressBar::new(count(&job, "matched"));
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(format!("job {id}"));
    while job["status"] == "running" {
        tokio::time::sleep(FOLLOW_EVERY).await;
        job = api
            .send(reqwest::Method::GET, &format!("/jobs/{id}"))
            .await?;
        let seen = count(&job, "done") + count(&job, "failed") + count(&job, "skipped");
        bar.set_length(count(&job, "matched").max(seen));
        bar.set_position(seen);
    }
    bar.finish_and_clear();
    println!(
        "job {id} {}: {} matched, {} {verb}, {} failed, {} skipped",
        job["status"].as_str().unwrap_or("?"),
        count(&job, "matched"),
        count(&job, "done"),
        count(&job, "failed"),
        count(&job, "skipped"),
    );
    if job["status"] != "done" {
        let error = job["last_error"].as_str().unwrap_or("no error recorded");
        return Err(Failure(format!("job {id} did not finish: {error}")));
    }
    if count(&job, "failed") > 0 {
        return Err(Failure(format!(
            "job {id}: {} item(s) were refused or failed again; `idemhook events show` gives \
             each one's reason",
            count(&job, "failed")
        )));
    }
    Ok(())
}

pub async fn destinations(action: DestinationsAction) -> Result<(), Failure> {
    let (remote, path, pause) = match &action {
        DestinationsAction::List { json, remote } => {
            let list = Api::new(remote)?
                .send(reqwest::Method::GET, "/destinations")
                .await?;
            if *json {
                println!("{list}");
            } else {
                print!("{}", render::destinations_table(&list));
            }
            return Ok(());
        }
        DestinationsAction::Pause {
            source,
            name,
            remote,
        } => (
            remote,
            format!("/destinations/{}/{}/pause", encode(source), encode(name)),
            true,
        ),
        DestinationsAction::Resume {
            source,
            name,
            remote,
        } => (
            remote,
            format!("/destinations/{}/{}/resume", encode(source), encode(name)),
            false,
        ),
    };
    let destination = Api::new(remote)?.send(reqwest::Method::POST, &path).await?;
    println!(
        "{} {}/{}: {}",
        if pause { "paused" } else { "resumed" },
        destination["source"].as_str().unwrap_or_default(),
        destination["name"].as_str().unwrap_or_default(),
        destination["state"].as_str().unwrap_or_default(),
    );
    Ok(())
}

pub async fn audit(args: AuditArgs) -> Result<(), Failure> {
    let api = Api::new(&args.remote)?;
    let limit = args.limit.to_string();
    let pairs = [
        ("operator", args.operator.as_deref()),
        ("action", args.action.as_deref()),
        ("since", args.since.as_deref()),
        ("until", args.until.as_deref()),
        ("limit", Some(limit.as_str())),
        ("cursor", args.cursor.as_deref()),
    ];
    let page = api
        .send(reqwest::Method::GET, &format!("/audit{}", query(&pairs)))
        .await?;
    if args.json {
        println!("{page}");
    } else {
        print!("{}", render::audit_table(&page));
    }
    Ok(())
}
