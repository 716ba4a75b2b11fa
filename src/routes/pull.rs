//! `POST /pull/<source>/<destination>/{lease,ack,nack}`: a `pull` destination's consumer
//! takes its deliveries (`forward::pull`). Each request carries that destination's own bearer
//! token (`token_env`), never the admin token: a consumer can read and settle its own
//! deliveries and nothing else. An unknown destination is 404 before the token is looked at
//! (the names are in the configuration, not secrets); a wrong token, or another
//! destination's, is 401.

use std::time::Duration;

use base64::Engine as _;
use chrono::SecondsFormat;
use rocket::data::{Data, ToByteUnit};
use rocket::http::uri::Origin;
use rocket::request::{FromRequest, Outcome, Request};
use rocket::serde::json::Json;
use rocket::{post, routes, Route, State};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::forward::attempt::idempotency_key;
use crate::forward::pull::{parse_token, Leased, Pull, PullTarget};
use crate::operator::filter::pairs;
use crate::routes::auth::{Credential, Guard};
use crate::routes::error::{ApiError, ErrorBody};

pub fn routes() -> Vec<Route> {
    routes![lease, ack, nack]
}

/// Most deliveries one lease, ack or nack names.
const MAX_BATCH: u64 = 500;
/// The longest long poll.
const MAX_WAIT_SECS: u64 = 30;
/// The longest a nack may put a delivery off.
const MAX_DELAY_SECS: u64 = 86_400;

/// The bearer token a request carries, if any, and the limits on guessing it.
pub struct Bearer<'r> {
    token: Option<String>,
    guard: Guard<'r>,
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for Bearer<'r> {
    type Error = std::convert::Infallible;

    async fn from_request(req: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        let token = req
            .headers()
            .get_one("Authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(|t| t.trim().to_owned());
        Guard::from_request(req)
            .await
            .map(|guard| Bearer { token, guard })
    }
}

/// The destination, once the request proved it may use it. An address past its limit of
/// wrong tokens is answered 429 whatever it presents; a wrong token counts towards it.
fn authorized<'a>(
    pull: &'a Pull,
    source: &str,
    name: &str,
    bearer: &Bearer<'_>,
) -> Result<&'a PullTarget, ApiError> {
    let target = pull.find(source, name).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no pull destination {name:?} of source {source:?} is configured"
        ))
    })?;
    bearer.guard.check(Credential::Pull)?;
    match bearer.token.as_deref() {
        Some(token) if target.authorized(token) => Ok(target),
        presented => {
            if presented.is_some() {
                bearer.guard.failed(Credential::Pull);
            }
            Err(ApiError::Unauthorized(
                "this destination's consumer token is required: Authorization: Bearer <token>"
                    .into(),
            ))
        }
    }
}

/// One leased delivery.
#[derive(Serialize, ToSchema)]
pub struct PulledDelivery {
    /// What to ack or nack it with.
    pub lease_token: String,
    /// The event's key: the same on every attempt and every redelivery; apply it once.
    pub idempotency_key: String,
    pub source: String,
    pub event_type: String,
    pub event_id: String,
    pub content_type: Option<String>,
    /// The body, when it is valid UTF-8 …
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// … else its bytes, base64.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// 1 for the first lease, counting leases that ran out and nacks.
    pub attempt: i32,
    /// RFC 3339: ack before then, or it may be leased again.
    pub leased_until: String,
    /// The event's W3C trace context, when idemhook traces: continue it to join the trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PulledDeliveries {
    pub deliveries: Vec<PulledDelivery>,
}

impl From<Leased> for PulledDelivery {
    fn from(l: Leased) -> Self {
        let key = idempotency_key(l.row.event_key());
        let (body, body_base64) = match String::from_utf8(l.row.payload) {
            Ok(text) => (Some(text), None),
            Err(e) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(e.into_bytes())),
            ),
        };
        PulledDelivery {
            lease_token: l.lease_token,
            idempotency_key: key,
            source: l.row.source,
            event_type: l.row.event_type,
            event_id: l.row.event_id,
            content_type: l.row.content_type,
            body,
            body_base64,
            attempt: l.row.attempts,
            leased_until: l.leased_until.to_rfc3339_opts(SecondsFormat::Millis, true),
            traceparent: l.row.traceparent,
        }
    }
}

/// A query parameter's number, within its bounds, or a 400 naming it.
fn number(
    params: &[(String, String)],
    name: &str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ApiError> {
    let Some((_, value)) = params.iter().find(|(n, _)| n == name) else {
        return Ok(default);
    };
    value
        .parse::<u64>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            ApiError::BadRequest(format!(
                "`{name}` = {value:?} must be a whole number in {}..={}",
                range.start(),
                range.end()
            ))
        })
}

/// Leases up to `max` due deliveries, waiting up to `wait_secs` for one to be due (a long
/// poll; an empty list when none came).
#[utoipa::path(post, path = "/pull/{source}/{destination}/lease", tag = "pull",
    params(
        ("source" = String, Path), ("destination" = String, Path),
        ("max" = Option<u64>, Query, minimum = 1, maximum = 500, description = "default 1"),
        ("wait_secs" = Option<u64>, Query, minimum = 0, maximum = 30, description = "default 0"),
    ),
    responses(
        (status = 200, body = PulledDeliveries),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/pull/<source>/<destination>/lease")]
pub async fn lease(
    source: &str,
    destination: &str,
    bearer: Bearer<'_>,
    uri: &Origin<'_>,
    pull: &State<Pull>,
) -> Result<Json<PulledDeliveries>, ApiError> {
    let target = authorized(pull, source, destination, &bearer)?;
    let params = pairs(uri.query().map(|q| q.as_str()), &["max", "wait_secs"])?;
    let max = number(&params, "max", 1, 1..=MAX_BATCH)?;
    let wait = number(&params, "wait_secs", 0, 0..=MAX_WAIT_SECS)?;
    let leased = pull.lease(target, max, Duration::from_secs(wait)).await?;
    Ok(Json(PulledDeliveries {
        deliveries: leased.into_iter().map(PulledDelivery::from).collect(),
    }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AckRequest {
    /// 1 to 500 lease tokens.
    pub lease_tokens: Vec<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NackRequest {
    /// 1 to 500 lease tokens.
    pub lease_tokens: Vec<String>,
    /// How long before each is due again (0 to 86400; default 0).
    #[serde(default)]
    pub delay_secs: u64,
}

#[derive(Serialize, ToSchema)]
pub struct Acked {
    pub acked: u64,
    /// Tokens whose lease ran out (the delivery may have been leased again): not acked.
    pub stale: Vec<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Nacked {
    pub nacked: u64,
    /// Tokens whose lease ran out: nothing done.
    pub stale: Vec<String>,
}

/// The JSON body, at most 1 MiB, or a 400 saying what is wrong with it.
async fn json_body<T: serde::de::DeserializeOwned>(data: Data<'_>) -> Result<T, ApiError> {
    let body = data
        .open(1.mebibytes())
        .into_string()
        .await
        .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
    if !body.is_complete() {
        return Err(ApiError::BadRequest("the body is larger than 1 MiB".into()));
    }
    serde_json::from_str(&body).map_err(|e| ApiError::BadRequest(format!("the body: {e}")))
}

/// The tokens, each parsed, 1 to 500 of them.
fn tokens(
    texts: Vec<String>,
) -> Result<Vec<(String, crate::forward::deliveries::pull::Lease)>, ApiError> {
    if texts.is_empty() || texts.len() as u64 > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "`lease_tokens` must hold 1 to {MAX_BATCH} tokens"
        )));
    }
    texts
        .into_iter()
        .enumerate()
        .map(|(i, text)| match parse_token(&text) {
            Some(lease) => Ok((text, lease)),
            None => Err(ApiError::BadRequest(format!(
                "`lease_tokens[{i}]` is not a lease token"
            ))),
        })
        .collect()
}

/// Acks leased deliveries: each is delivered, unless its lease ran out (`stale`).
#[utoipa::path(post, path = "/pull/{source}/{destination}/ack", tag = "pull",
    params(("source" = String, Path), ("destination" = String, Path)),
    request_body = AckRequest,
    responses(
        (status = 200, body = Acked),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/pull/<source>/<destination>/ack", data = "<data>")]
pub async fn ack(
    source: &str,
    destination: &str,
    bearer: Bearer<'_>,
    data: Data<'_>,
    pull: &State<Pull>,
) -> Result<Json<Acked>, ApiError> {
    let target = authorized(pull, source, destination, &bearer)?;
    let request: AckRequest = json_body(data).await?;
    let settled = pull.ack(target, &tokens(request.lease_tokens)?).await?;
    Ok(Json(Acked {
        acked: settled.done,
        stale: settled.stale,
    }))
}

/// Gives leased deliveries back: each attempt counted, due again after `delay_secs`, dead
/// after `max_attempts` (redeliverable like any dead delivery).
#[utoipa::path(post, path = "/pull/{source}/{destination}/nack", tag = "pull",
    params(("source" = String, Path), ("destination" = String, Path)),
    request_body = NackRequest,
    responses(
        (status = 200, body = Nacked),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody),
    ),
    security(("bearer" = [])))]
#[post("/pull/<source>/<destination>/nack", data = "<data>")]
pub async fn nack(
    source: &str,
    destination: &str,
    bearer: Bearer<'_>,
    data: Data<'_>,
    pull: &State<Pull>,
) -> Result<Json<Nacked>, ApiError> {
    let target = authorized(pull, source, destination, &bearer)?;
    let request: NackRequest = json_body(data).await?;
    if request.delay_secs > MAX_DELAY_SECS {
        return Err(ApiError::BadRequest(format!(
            "`delay_secs` must be 0..={MAX_DELAY_SECS}"
        )));
    }
    let delay = Duration::from_secs(request.delay_secs);
    let settled = pull
        .nack(target, &tokens(request.lease_tokens)?, delay)
        .await?;
    Ok(Json(Nacked {
        nacked: settled.done,
        stale: settled.stale,
    }))
}
