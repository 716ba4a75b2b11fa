//! Signing in and out of the console with an operator's token (the token names the
//! operator: no user name is asked for). A wrong token counts towards the address's limit on
//! guessing; past it, sign-in answers 429 whatever the token.

use maud::html;
use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::{get, post, Either, State};

use super::page::{disabled, layout, Page};
use crate::clock::Clock;
use crate::operator::audit::{Action, Actor, Change};
use crate::operator::Operator;
use crate::routes::auth::{
    over_https, session_cookie, Credential, Guard, Identity, NoSession, Operators, Session,
    SESSION_COOKIE,
};

#[derive(FromForm)]
pub struct SignIn<'r> {
    token: &'r str,
}

#[derive(FromForm)]
pub struct SignOut<'r> {
    csrf: &'r str,
}

fn form(status: Status, error: Option<&str>) -> Page {
    Page {
        status,
        retry_after: None,
        markup: layout(
            "Sign in",
            None,
            html! {
                @if let Some(error) = error {
                    p.error role="alert" { (error) }
                }
                form.signin method="post" action="/console/login" {
                    label for="token" { "Operator token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
                p.hint {
                    "Your operator's token (the variable its " code { "token_env" } " names), or "
                    code { "IDEMHOOK_ADMIN_TOKEN" } ". The session is kept in an HttpOnly cookie "
                    "for 12 hours; removing the token signs its sessions out."
                }
            },
        ),
    }
}

#[get("/console/login")]
pub fn login_form(session: Result<Session, NoSession>) -> Either<Page, Redirect> {
    match session {
        Ok(_) => Either::Right(Redirect::to("/console")),
        Err(NoSession::Disabled) => Either::Left(disabled()),
        Err(NoSession::SignedOut) => Either::Left(form(Status::Ok, None)),
    }
}

#[post("/console/login", data = "<form_data>")]
pub async fn login(
    form_data: Form<SignIn<'_>>,
    operators: &State<Operators>,
    operator: &State<Operator>,
    guard: Guard<'_>,
    clock: &State<Clock>,
    cookies: &CookieJar<'_>,
    https: Https,
) -> Either<Page, Redirect> {
    if !operators.enabled() {
        return Either::Left(disabled());
    }
    if let Some(secs) = guard.retry_after(Credential::SignIn) {
        let mut page = form(
            Status::TooManyRequests,
            Some(&crate::routes::auth::too_many(secs).to_string()),
        );
        page.retry_after = Some(secs);
        return Either::Left(page);
    }
    match operators.issue(form_data.token, clock.now().timestamp()) {
        Some((who, value)) => {
            cookies.add(session_cookie(https.0, value));
            tracing::info!(operator = %who.name, role = who.role.as_str(), "console: signed in");
            operator
                .record(&session_change(who, guard.client(), Action::SignIn), "ok")
                .await;
            Either::Right(Redirect::to("/console"))
        }
        None => {
            guard.failed(Credential::SignIn);
            Either::Left(form(Status::Unauthorized, Some("Wrong token.")))
        }
    }
}

/// Signs out: the cookie is removed from this browser. (A copied cookie stays valid until it
/// expires; rotate the token to end every session.)
#[post("/console/logout", data = "<form_data>")]
pub async fn logout(
    form_data: Form<SignOut<'_>>,
    operators: &State<Operators>,
    operator: &State<Operator>,
    guard: Guard<'_>,
    clock: &State<Clock>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Page> {
    let now = clock.now().timestamp();
    let session = cookies.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    let who = session
        .as_deref()
        .and_then(|s| operators.session(s, now))
        .filter(|s| s.csrf_matches(form_data.csrf))
        .map(|s| s.identity);
    let Some(who) = who else {
        return Err(form(
            Status::Forbidden,
            Some("Sign-out refused: a wrong CSRF token."),
        ));
    };
    cookies.remove(SESSION_COOKIE);
    operator
        .record(&session_change(who, guard.client(), Action::SignOut), "ok")
        .await;
    Ok(Redirect::to("/console/login"))
}

/// A sign-in or sign-out, for the audit.
fn session_change(who: Identity, client: Option<std::net::IpAddr>, action: Action) -> Change {
    Change {
        actor: Actor {
            operator: who.name,
            role: who.role,
            on_behalf_of: None,
            client,
        },
        action,
        target: "console".to_owned(),
        params: serde_json::json!({}),
    }
}

/// Whether the request came over https (for the cookie's `Secure`).
pub struct Https(bool);

#[rocket::async_trait]
impl<'r> rocket::request::FromRequest<'r> for Https {
    type Error = std::convert::Infallible;

    async fn from_request(
        req: &'r rocket::Request<'_>,
    ) -> rocket::request::Outcome<Self, Self::Error> {
        rocket::request::Outcome::Success(Https(over_https(req)))
    }
}
