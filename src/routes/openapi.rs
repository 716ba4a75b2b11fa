//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, generated from the route
//! annotations (`utoipa::path`) and the answer types (`ToSchema`), so it cannot drift from
//! the code. `.ci/run` holds the running binary to it with schemathesis.

use rocket::http::ContentType;
use rocket::{get, routes, Route};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Header, Object, Ref, ResponseBuilder, Type};
use utoipa::{Modify, OpenApi};

use super::{admin, health, metrics, pull, webhooks};

pub fn routes() -> Vec<Route> {
    routes![openapi]
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "idemhook",
        description = "Exactly-once webhook receiver. The admin API needs `Authorization: Bearer <token>`: an operator's token (`[idemhook.operators.<name>]`, role `read` or `operate`) or `IDEMHOOK_ADMIN_TOKEN` (the operator `admin`, role `operate`); with neither configured it answers 403, and a `read` operator changing state gets 403. An address that presents too many wrong tokens in a minute is answered 429 with `Retry-After` until the minute ends."
    ),
    paths(
        webhooks::ingest,
        admin::events::list,
        admin::events::event,
        admin::events::replay_one,
        admin::events::redeliver,
        admin::events::replay_many,
        admin::destinations::list,
        admin::destinations::pause,
        admin::destinations::resume,
        admin::destinations::discard,
        admin::jobs::redrive,
        admin::jobs::job,
        admin::orders::order,
        admin::audit::audit,
        pull::lease,
        pull::ack,
        pull::nack,
        health::live,
        health::ready,
        metrics::metrics,
        openapi,
    ),
    // Referenced by query parameters, which utoipa does not collect on its own.
    components(schemas(crate::operator::filter::Status)),
    modifiers(&BearerAuth),
    tags(
        (name = "webhooks", description = "Ingest: what providers call"),
        (name = "admin", description = "Operators: search, replay, redrive, jobs, the audit"),
        (name = "pull", description = "A pull destination's consumer, with its own token"),
        (name = "health"), (name = "metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        // Every route behind a token may answer 429 (its address guessed too often): said once
        // here rather than on each route.
        let too_many = ResponseBuilder::new()
            .description("Too many wrong tokens from this address: retry after `Retry-After`")
            .header("Retry-After", Header::new(Object::with_type(Type::Integer)))
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                if op.security.as_ref().is_some_and(|s| !s.is_empty()) {
                    op.responses
                        .responses
                        .entry("429".to_owned())
                        .or_insert_with(|| too_many.clone().into());
                }
            }
        }
    }
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "health",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
#[get("/openapi.json")]
pub fn openapi() -> (ContentType, String) {
    let doc = ApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned());
    (ContentType::JSON, doc)
}
