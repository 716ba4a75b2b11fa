//! The app in process, on a fresh database: Rocket's local client, no socket.
//!
//! [`test_settings`] is the configuration every in-process scenario starts from; the signing
//! secrets of its sources are the consts below, and [`admin_env`] opens its admin API with
//! [`ADMIN_TOKEN`]; [`payment`] is the event most scenarios post; [`rows`], [`amount_paid`] and
//! [`assert_orders_exact`] read the database directly, bypassing the app, for what a
//! scenario must prove was (or was not) committed.

use std::sync::Arc;

use idemhook::clock::Clock;
use idemhook::config::{
    Environment, OnMissingId, ProviderKind, SecretEnv, Settings, SignatureEncoding, SourceConfig,
};
use idemhook::engine::Engine;
use idemhook::entities::{failed_attempt, inbox, order, processed_event};
use idemhook::sweeper::Sweeper;
use idemhook::App;
use rocket::figment::Figment;
use rocket::http::{Header, Status};
use rocket::local::asynchronous::Client;
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait};
use serde_json::Value;

use super::db::TestDb;
use super::faults::Faults;

/// The settings every test starts from: a `demo` source like the shipped Rocket.toml's, a
/// `strict` one that rejects events without an id, and `flaky` / `panicky` / `gated` sources
/// whose test handlers fail, panic or block on demand.
pub fn test_settings(db: &TestDb) -> Settings {
    let source = |handlers: &[&str]| SourceConfig {
        handlers: handlers.iter().map(|h| (*h).to_owned()).collect(),
        ..SourceConfig::default()
    };
    let mut settings = Settings {
        database_url: Some(db.url.clone()),
        shards: 4,
        ..Settings::default()
    };
    settings
        .sources
        .insert("demo".into(), source(&["inbox", "payments"]));
    settings.sources.insert(
        "strict".into(),
        SourceConfig {
            on_missing_id: OnMissingId::Reject,
            ..source(&["inbox"])
        },
    );
    settings
        .sources
        .insert("flaky".into(), source(&["payments", "flaky"]));
    settings
        .sources
        .insert("panicky".into(), source(&["inbox", "panicky"]));
    settings
        .sources
        .insert("picky".into(), source(&["inbox", "picky"]));
    settings.sources.insert("gated".into(), source(&["gate"]));
    let signed = |provider, var: &str| SourceConfig {
        provider,
        secret_env: Some(SecretEnv::One(var.to_owned())),
        ..source(&["inbox", "payments"])
    };
    settings.sources.insert(
        "stripe".into(),
        SourceConfig {
            secret_env: Some(SecretEnv::Many(vec![
                "TEST_STRIPE_SECRET_OLD".to_owned(),
                "TEST_STRIPE_SECRET".to_owned(),
            ])),
            ..signed(ProviderKind::Stripe, "unused")
        },
    );
    for (name, provider, var) in [
        ("github", ProviderKind::Github, "TEST_GITHUB_SECRET"),
        ("shopify", ProviderKind::Shopify, "TEST_SHOPIFY_SECRET"),
        ("standard", ProviderKind::Standard, "TEST_STANDARD_SECRET"),
    ] {
        settings.sources.insert(name.into(), signed(provider, var));
    }
    settings.sources.insert(
        "hmac".into(),
        SourceConfig {
            signature_header: "X-Signature".into(),
            signature_prefix: "sha256=".into(),
            signature_encoding: SignatureEncoding::Hex,
            timestamp_header: "X-Timestamp".into(),
            ..signed(ProviderKind::Generic, "TEST_HMAC_SECRET")
        },
    );
    settings
}

/// Signing secrets of the test sources. Stripe's rotate: the old and the new one are both
/// active, each in a variable of its own (`secret_env` lists both).
pub const STRIPE_SECRETS: [&str; 2] = ["whsec_old_stripe_secret", "whsec_new_stripe_secret"];
pub const GITHUB_SECRET: &str = "gh-secret";
pub const SHOPIFY_SECRET: &str = "shpss_secret";
/// `whsec_` + base64("standard-webhooks-test-key")
pub const STANDARD_SECRET: &str = "whsec_c3RhbmRhcmQtd2ViaG9va3MtdGVzdC1rZXk=";
pub const HMAC_SECRET: &str = "generic-hmac-secret";

/// The admin token of every test app and server that opens the admin API ([`admin_env`],
/// [`start`](super::forwarding::start)). `admin.rs` and `logs.rs` keep their own: one tries
/// near misses of its token, the other looks for its token in the logs.
pub const ADMIN_TOKEN: &str = "admin-token-for-tests";

/// An environment with the admin API open to [`ADMIN_TOKEN`].
pub fn admin_env() -> Environment {
    Environment::empty().with("IDEMHOOK_ADMIN_TOKEN", ADMIN_TOKEN)
}

fn with_test_secrets(env: Environment) -> Environment {
    env.with("TEST_STRIPE_SECRET_OLD", STRIPE_SECRETS[0])
        .with("TEST_STRIPE_SECRET", STRIPE_SECRETS[1])
        .with("TEST_GITHUB_SECRET", GITHUB_SECRET)
        .with("TEST_SHOPIFY_SECRET", SHOPIFY_SECRET)
        .with("TEST_STANDARD_SECRET", STANDARD_SECRET)
        .with("TEST_HMAC_SECRET", HMAC_SECRET)
}

pub fn figment(settings: &Settings) -> Figment {
    Figment::from(rocket::Config::debug_default())
        .merge(("log_level", "off"))
        .merge(("idemhook", settings))
}

pub struct TestApp {
    pub client: Client,
    pub faults: Faults,
}

impl TestApp {
    pub async fn spawn(settings: &Settings) -> TestApp {
        Self::spawn_with(settings, Environment::empty())
            .await
            .expect("the app launches")
    }

    /// Launches the app; `Err` carries Rocket's launch error (a refused config, say).
    pub async fn spawn_with(settings: &Settings, env: Environment) -> Result<TestApp, String> {
        Self::launch(settings, env, Clock::system()).await
    }

    pub async fn launch(
        settings: &Settings,
        env: Environment,
        clock: Clock,
    ) -> Result<TestApp, String> {
        Self::launch_figment(figment(settings), env, clock).await
    }

    /// Launches the app on a figment built from [`figment`] and changed by the test (Rocket's
    /// own settings, such as limits).
    pub async fn launch_figment(
        figment: Figment,
        env: Environment,
        clock: Clock,
    ) -> Result<TestApp, String> {
        let faults = Faults::default();
        let app = faults.register(
            App::new()
                .figment(figment)
                .environment(with_test_secrets(env))
                .clock(clock),
        );
        let client = Client::untracked(app.rocket())
            .await
            .map_err(|e| e.to_string())?;
        Ok(TestApp { client, faults })
    }

    pub async fn post(&self, source: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut req = self.client.post(format!("/webhooks/{source}")).body(body);
        for (name, value) in headers {
            req = req.header(Header::new(name.to_string(), value.to_string()));
        }
        let resp = req.dispatch().await;
        let status = resp.status();
        let replayed = resp
            .headers()
            .get_one("Idempotent-Replayed")
            .map(str::to_owned);
        let retry_after = resp.headers().get_one("Retry-After").map(str::to_owned);
        let text = resp.into_string().await.unwrap_or_default();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            json,
            replayed,
            retry_after,
        }
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(self.client.get(path.to_owned()), token).await
    }

    /// A POST to the admin API (or any path), with `token` as the bearer when given.
    pub async fn post_admin(&self, path: &str, token: Option<&str>) -> Reply {
        self.call(self.client.post(path.to_owned()), token).await
    }

    async fn call(
        &self,
        mut req: rocket::local::asynchronous::LocalRequest<'_>,
        token: Option<&str>,
    ) -> Reply {
        if let Some(token) = token {
            req = req.header(Header::new("Authorization", format!("Bearer {token}")));
        }
        let resp = req.dispatch().await;
        let status = resp.status();
        let text = resp.into_string().await.unwrap_or_default();
        Reply {
            status,
            json: serde_json::from_str(&text).unwrap_or(Value::Null),
            replayed: None,
            retry_after: None,
        }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        self.client.rocket().state::<Arc<Engine>>().expect("engine")
    }

    /// The app's retention sweeper, to run a sweep now instead of waiting for its interval.
    pub fn sweeper(&self) -> &Sweeper {
        self.client
            .rocket()
            .state::<Arc<Sweeper>>()
            .expect("sweeper")
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: Status,
    pub json: Value,
    pub replayed: Option<String>,
    pub retry_after: Option<String>,
}

impl Reply {
    pub fn outcome(&self) -> &str {
        self.json["status"].as_str().unwrap_or("")
    }

    pub fn error(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
}

/// A `payment_succeeded` event paying `amount` euros into `order_id`.
pub fn payment(event_id: &str, order_id: &str, amount: i64) -> String {
    serde_json::json!({
        "id": event_id,
        "type": "payment_succeeded",
        "data": {"order_id": order_id, "amount": amount, "currency": "eur"}
    })
    .to_string()
}

/// A `payment_succeeded` event paying 5 dollars into `order_id`: rejected by the `payments`
/// handler while the order is kept in euros.
pub fn usd_payment(event_id: &str, order_id: &str) -> String {
    serde_json::json!({
        "id": event_id, "type": "payment_succeeded",
        "data": {"order_id": order_id, "amount": 5, "currency": "usd"}
    })
    .to_string()
}

/// The query that names the type of a [`payment`] (or [`usd_payment`]) in the paths of its
/// admin view, replay and redelivery and of its console page: `…/events/<id>?{PAY}`.
pub const PAY: &str = "type=payment_succeeded";

/// Row counts straight from the database, bypassing the app.
pub struct Rows {
    pub processed: u64,
    pub failed: u64,
    pub inbox: u64,
}

pub async fn rows(db: &DatabaseConnection) -> Rows {
    Rows {
        processed: processed_event::Entity::find().count(db).await.unwrap(),
        failed: failed_attempt::Entity::find().count(db).await.unwrap(),
        inbox: inbox::Entity::find().count(db).await.unwrap(),
    }
}

pub async fn amount_paid(db: &DatabaseConnection, order_id: &str) -> Option<i64> {
    order::Entity::find_by_id(order_id.to_owned())
        .one(db)
        .await
        .unwrap()
        .map(|o| o.amount_paid)
}

/// Asserts that each of `orders` orders (`order_0`…) holds exactly the sum of the amounts of
/// the events `0..events` that pay into it (event `e` pays `amount(e)` into order `e % orders`):
/// the proof that no event was applied twice or lost.
pub async fn assert_orders_exact(
    db: &DatabaseConnection,
    events: usize,
    orders: usize,
    amount: impl Fn(usize) -> i64,
) {
    for order in 0..orders {
        let expected: i64 = (0..events)
            .filter(|e| e % orders == order)
            .map(&amount)
            .sum();
        assert_eq!(
            amount_paid(db, &format!("order_{order}")).await,
            Some(expected),
            "order_{order}"
        );
    }
}
