//! `GET /openapi.json`: the OpenAPI 3.1 document of every route, generated from the route
//! annotations (`utoipa::path`) and the answer types (`ToSchema`), so it cannot drift from
//! the code. `.ci/run` holds the running binary to it with schemathesis.

use rocket::http::ContentType;
use rocket::{get, routes, Route};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{admin, health, metrics, pull, webhooks};

pub fn routes() -> Vec<Route> {
    routes![openapi]
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "idemhook",
        description = "Exactly-once webhook receiver. The admin API needs `Authorization: Bearer <IDEMHOOK_ADMIN_TOKEN>`; without that variable it answers 403."
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
        (name = "admin", description = "Operators: search, replay, redrive, jobs"),
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
