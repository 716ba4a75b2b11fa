//! Signing in and out of the console with the admin token.

use maud::html;
use rocket::form::{Form, FromForm};
use rocket::http::{CookieJar, Status};
use rocket::response::Redirect;
use rocket::{get, post, Either, State};

use super::page::{disabled, layout, Page};
use crate::clock::Clock;
use crate::routes::auth::{
    over_https, session_cookie, AdminToken, NoSession, Session, SESSION_COOKIE,
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
        markup: layout(
            "Sign in",
            None,
            html! {
                @if let Some(error) = error {
                    p.error role="alert" { (error) }
                }
                form.signin method="post" action="/console/login" {
                    label for="token" { "Admin token" }
                    input #token type="password" name="token" autocomplete="current-password" required autofocus;
                    button type="submit" { "Sign in" }
                }
                p.hint {
                    "The value of " code { "IDEMHOOK_ADMIN_TOKEN" } " in idemhook's environment. "
                    "It is kept in an HttpOnly cookie for 12 hours; rotating the token signs "
                    "every session out."
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
pub fn login(
    form_data: Form<SignIn<'_>>,
    token: &State<AdminToken>,
    clock: &State<Clock>,
    cookies: &CookieJar<'_>,
    https: Https,
) -> Either<Page, Redirect> {
    if token.0.is_none() {
        return Either::Left(disabled());
    }
    let issued = token
        .matches(form_data.token)
        .then(|| token.issue(clock.now().timestamp()))
        .flatten();
    match issued {
        Some(value) => {
            cookies.add(session_cookie(https.0, value));
            tracing::info!("console: an operator signed in");
            Either::Right(Redirect::to("/console"))
        }
        None => {
            tracing::warn!("console: a sign-in with a wrong token");
            Either::Left(form(Status::Unauthorized, Some("Wrong token.")))
        }
    }
}

/// Signs out: the cookie is removed from this browser. (A copied cookie stays valid until it
/// expires; rotate the token to end every session.)
#[post("/console/logout", data = "<form_data>")]
pub fn logout(
    form_data: Form<SignOut<'_>>,
    token: &State<AdminToken>,
    cookies: &CookieJar<'_>,
) -> Result<Redirect, Page> {
    let session = cookies.get(SESSION_COOKIE).map(|c| c.value().to_owned());
    let ok = session.is_some_and(|s| token.valid_csrf(&s, form_data.csrf));
    if !ok {
        return Err(form(
            Status::Forbidden,
            Some("Sign-out refused: a wrong CSRF token."),
        ));
    }
    cookies.remove(SESSION_COOKIE);
    Ok(Redirect::to("/console/login"))
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
