//! The operators who may use the admin API and the console: each a name, a role, and one or
//! more tokens (several while a token is rotated). Built once at launch from
//! `[idemhook.operators]` and `IDEMHOOK_ADMIN_TOKEN` (the operator `admin`, role `operate`).
//!
//! A token names its operator: no two operators may share one (the launch refuses it), so a
//! bearer token or a sign-in needs no user name. Sessions are signed with the token the
//! operator signed in with, so removing a token from the list ends the sessions made with it,
//! and any instance verifies a session without shared state.

use hmac::{Hmac, KeyInit, Mac};
use subtle::ConstantTimeEq;

use crate::config::{Environment, Role, Settings, ADMIN_OPERATOR};
use crate::event::key::{sha256, Sha256Digest};

/// How long a console session lasts.
pub const SESSION_SECS: i64 = 12 * 3600;

/// One operator, as configured.
#[derive(Debug)]
struct Known {
    name: String,
    role: Role,
    tokens: Vec<String>,
    /// Each token's SHA-256, computed once: what a presented token's digest is compared with.
    digests: Vec<Sha256Digest>,
}

impl Known {
    fn new(name: String, role: Role, tokens: Vec<String>) -> Self {
        let digests = tokens.iter().map(|t| sha256(t.as_bytes())).collect();
        Known {
            name,
            role,
            tokens,
            digests,
        }
    }
}

/// Who is asking, once proven.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
}

/// A valid session: who, and what its CSRF token is made of (the token it was signed with,
/// and the cookie).
pub struct SessionOf<'a> {
    pub identity: Identity,
    key: &'a str,
    cookie: &'a str,
}

impl SessionOf<'_> {
    /// The session's CSRF token.
    pub fn csrf(&self) -> String {
        mac(self.key, "idemhook console csrf v2", &[self.cookie])
    }

    /// Whether `presented` is the session's CSRF token (compared in constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        bool::from(self.csrf().as_bytes().ct_eq(presented.as_bytes()))
    }
}

/// Every operator. Empty: the admin API and the console are disabled.
#[derive(Debug, Default)]
pub struct Operators {
    known: Vec<Known>,
}

impl Operators {
    /// The operators of `settings`, their tokens read from `env`, plus `admin` when
    /// `IDEMHOOK_ADMIN_TOKEN` is set. A variable that is not set or empty, a token two
    /// operators share, or an `[operators.admin]` beside `IDEMHOOK_ADMIN_TOKEN` refuses to
    /// launch, naming it.
    pub fn from_settings(settings: &Settings, env: &Environment) -> Result<Self, String> {
        let mut known = Vec::new();
        if let Some(token) = env
            .get("IDEMHOOK_ADMIN_TOKEN")
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            if settings.operators.contains_key(ADMIN_OPERATOR) {
                return Err(format!(
                    "idemhook.operators.{ADMIN_OPERATOR} is configured and IDEMHOOK_ADMIN_TOKEN \
                     is set: both name the operator {ADMIN_OPERATOR:?}; keep one"
                ));
            }
            known.push(Known::new(
                ADMIN_OPERATOR.to_owned(),
                Role::Operate,
                vec![token.to_owned()],
            ));
        }
        for (name, cfg) in &settings.operators {
            let table = format!("idemhook.operators.{name}");
            let tokens = cfg
                .token_env
                .names()
                .into_iter()
                .map(|var| env.required(&table, "token_env", var))
                .collect::<Result<Vec<_>, _>>()?;
            known.push(Known::new(name.clone(), cfg.role, tokens));
        }
        for (i, a) in known.iter().enumerate() {
            for b in &known[i + 1..] {
                if a.tokens.iter().any(|t| b.tokens.contains(t)) {
                    return Err(format!(
                        "the operators {:?} and {:?} share a token: a token must name one \
                         operator",
                        a.name, b.name
                    ));
                }
            }
        }
        Ok(Self { known })
    }

    /// Operators from a list, for tests: `(name, role, tokens)`.
    #[cfg(test)]
    pub fn of(list: &[(&str, Role, &[&str])]) -> Self {
        Self {
            known: list
                .iter()
                .map(|(name, role, tokens)| {
                    let tokens = tokens.iter().map(|t| (*t).to_owned()).collect();
                    Known::new((*name).to_owned(), *role, tokens)
                })
                .collect(),
        }
    }

    pub fn enabled(&self) -> bool {
        !self.known.is_empty()
    }

    /// The operator whose token `presented` is. Every token is compared, each in constant
    /// time (digests first, so the time depends neither on the presented length nor on which
    /// token, if any, matched).
    pub fn authenticate(&self, presented: &str) -> Option<Identity> {
        self.find(presented).map(|(k, _)| identity(k))
    }

    fn find(&self, presented: &str) -> Option<(&Known, &str)> {
        let digest = sha256(presented.as_bytes());
        let mut found = None;
        for known in &self.known {
            for (token, expected) in known.tokens.iter().zip(&known.digests) {
                if bool::from(digest.ct_eq(expected)) && found.is_none() {
                    found = Some((known, token.as_str()));
                }
            }
        }
        found
    }

    /// A new session cookie's value for the operator whose token is `presented`, issued at
    /// `now` (unix seconds): `<name>.<issued>.<HMAC(token, name, issued)>`.
    pub fn issue(&self, presented: &str, now: i64) -> Option<(Identity, String)> {
        let (known, token) = self.find(presented)?;
        let issued = now.to_string();
        let mac = mac(
            token,
            "idemhook console session v2",
            &[&known.name, &issued],
        );
        Some((identity(known), format!("{}.{issued}.{mac}", known.name)))
    }

    /// The session `cookie` proves, if it was issued by one of its operator's current tokens
    /// no longer than [`SESSION_SECS`] ago.
    pub fn session<'a>(&'a self, cookie: &'a str, now: i64) -> Option<SessionOf<'a>> {
        let mut parts = cookie.splitn(3, '.');
        let (name, issued, presented) = (parts.next()?, parts.next()?, parts.next()?);
        let at = issued.parse::<i64>().ok()?;
        if at > now + 60 || now - at > SESSION_SECS {
            return None;
        }
        let known = self.known.iter().find(|k| k.name == name)?;
        let token = known.tokens.iter().find(|token| {
            let expected = mac(token, "idemhook console session v2", &[name, issued]);
            bool::from(expected.as_bytes().ct_eq(presented.as_bytes()))
        })?;
        Some(SessionOf {
            identity: identity(known),
            key: token,
            cookie,
        })
    }
}

fn identity(known: &Known) -> Identity {
    Identity {
        name: known.name.clone(),
        role: known.role,
    }
}

fn mac(key: &str, purpose: &str, parts: &[&str]) -> String {
    let mut mac =
        Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key length");
    mac.update(purpose.as_bytes());
    for part in parts {
        mac.update(b"\0");
        mac.update(part.as_bytes());
    }
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{OperatorConfig, SecretEnv};

    fn operators() -> Operators {
        Operators::of(&[
            ("alice", Role::Operate, &["alice-new", "alice-old"]),
            ("bob", Role::Read, &["bob-token"]),
        ])
    }

    #[test]
    fn a_token_names_its_operator_and_role() {
        let ops = operators();
        assert_eq!(ops.authenticate("alice-old").unwrap().name, "alice");
        assert_eq!(ops.authenticate("alice-new").unwrap().role, Role::Operate);
        assert_eq!(ops.authenticate("bob-token").unwrap().role, Role::Read);
        assert_eq!(ops.authenticate("bob-token ").map(|i| i.name), None);
        assert_eq!(ops.authenticate("").map(|i| i.name), None);
        assert!(!Operators::default().enabled());
    }

    #[test]
    fn a_session_is_valid_for_its_operator_token_and_lifetime_only() {
        let ops = operators();
        let (who, cookie) = ops.issue("alice-old", 1_000_000).unwrap();
        assert_eq!(who.name, "alice");
        let session = ops.session(&cookie, 1_000_000 + SESSION_SECS).unwrap();
        assert_eq!(session.identity, who);
        assert!(
            ops.session(&cookie, 1_000_001 + SESSION_SECS).is_none(),
            "expired"
        );
        // The name and the time are signed: neither can be changed.
        let forged = cookie.replacen("alice", "bob", 1);
        assert!(ops.session(&forged, 1_000_000).is_none());
        let later = cookie.replacen("1000000", "1003600", 1);
        assert!(ops.session(&later, 1_003_600).is_none());
        // The old token rotated out: its sessions end; the new token's go on.
        let rotated = Operators::of(&[("alice", Role::Operate, &["alice-new"])]);
        assert!(rotated.session(&cookie, 1_000_000).is_none());
        let (_, fresh) = ops.issue("alice-new", 1_000_000).unwrap();
        assert!(rotated.session(&fresh, 1_000_000).is_some());
        assert!(ops.session("garbage", 1_000_000).is_none());
        assert!(ops.session("alice.x.y", 1_000_000).is_none());
    }

    #[test]
    fn the_csrf_token_belongs_to_its_session() {
        let ops = operators();
        let (_, a) = ops.issue("alice-new", 1).unwrap();
        let (_, b) = ops.issue("bob-token", 2).unwrap();
        let csrf = ops.session(&a, 1).unwrap().csrf();
        assert!(ops.session(&a, 1).unwrap().csrf_matches(&csrf));
        assert!(!ops.session(&b, 2).unwrap().csrf_matches(&csrf));
        assert!(!ops.session(&a, 1).unwrap().csrf_matches(""));
    }

    #[test]
    fn launch_refuses_a_shared_token_a_missing_variable_and_two_admins() {
        let mut settings = Settings::default();
        let op = |var: &str, role| OperatorConfig {
            token_env: SecretEnv::One(var.into()),
            role,
        };
        settings
            .operators
            .insert("alice".into(), op("A", Role::Operate));
        settings.operators.insert("bob".into(), op("B", Role::Read));
        let env = Environment::empty().with("A", "same").with("B", "other");
        let ops = Operators::from_settings(&settings, &env).unwrap();
        assert_eq!(ops.authenticate("other").unwrap().name, "bob");
        let err = Operators::from_settings(&settings, &env.clone().with("B", "same")).unwrap_err();
        assert!(err.contains("share a token"), "{err}");
        let err =
            Operators::from_settings(&settings, &Environment::empty().with("A", "x")).unwrap_err();
        assert!(
            err.contains("idemhook.operators.bob.token_env names B"),
            "{err}"
        );
        let with_admin = env.clone().with("IDEMHOOK_ADMIN_TOKEN", "root");
        let ops = Operators::from_settings(&settings, &with_admin).unwrap();
        assert_eq!(
            ops.authenticate("root").unwrap(),
            Identity {
                name: "admin".into(),
                role: Role::Operate
            }
        );
        settings
            .operators
            .insert("admin".into(), op("A", Role::Read));
        assert!(Operators::from_settings(&settings, &with_admin).is_err());
    }
}
