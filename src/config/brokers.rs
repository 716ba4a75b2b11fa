//! What a broker or pull destination's table must hold (`kind = "nats"`, `"rabbitmq"`,
//! `"pull"`), checked at launch beside the keys every kind shares (`config::forward`).

use super::forward::ForwardConfig;
use super::ConfigError;

impl ForwardConfig {
    pub(super) fn validate_nats(&self, table: &str) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if self.urls.is_empty() {
            return bad(format!(
                "{table}.urls is required: the NATS servers, e.g. [\"nats://127.0.0.1:4222\"]"
            ));
        }
        for u in &self.urls {
            match url::Url::parse(u) {
                Ok(parsed)
                    if matches!(parsed.scheme(), "nats" | "tls") && parsed.host().is_some() => {}
                _ => {
                    return bad(format!(
                        "{table}.urls holds {u:?}, which is not a nats:// or tls:// URL"
                    ))
                }
            }
        }
        if let Err(e) = super::subject::Template::parse(&self.subject) {
            return bad(format!("{table}.subject = {:?}: {e}", self.subject));
        }
        let stream_ok = !self.stream.is_empty()
            && self.stream.len() <= 255
            && !self.stream.chars().any(|c| {
                c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\')
            });
        if !stream_ok {
            return bad(format!(
                "{table}.stream = {:?} is required and must be a JetStream stream name (no \
                 spaces, '.', '*', '>', '/' or '\\')",
                self.stream
            ));
        }
        let user = self.user_env.is_some() || self.password_env.is_some();
        if self.user_env.is_some() != self.password_env.is_some() {
            return bad(format!("{table}: user_env and password_env go together"));
        }
        let ways = [
            self.token_env.is_some(),
            user,
            self.creds_file_env.is_some(),
        ];
        if ways.iter().filter(|w| **w).count() > 1 {
            return bad(format!(
                "{table}: name one way to authenticate: token_env, user_env + password_env, or \
                 creds_file_env"
            ));
        }
        Ok(())
    }

    pub(super) fn validate_rabbitmq(&self, table: &str) -> Result<(), ConfigError> {
        let bad = |msg: String| Err(ConfigError::Invalid(msg));
        if self.url_env.as_deref().is_none_or(|v| v.trim().is_empty()) {
            return bad(format!(
                "{table}.url_env is required: the variable holding the AMQP URL \
                 (amqp://user:password@host:5672/%2f)"
            ));
        }
        if self.exchange.is_empty()
            || self.exchange.len() > 255
            || self.exchange.chars().any(char::is_control)
        {
            return bad(format!(
                "{table}.exchange = {:?} is required: the name (1 to 255 bytes) of an exchange \
                 the operator declared",
                self.exchange
            ));
        }
        if let Err(e) = super::subject::Template::parse(&self.routing_key) {
            return bad(format!("{table}.routing_key = {:?}: {e}", self.routing_key));
        }
        Ok(())
    }

    pub(super) fn validate_pull(&self, table: &str) -> Result<(), ConfigError> {
        if self
            .token_env
            .as_deref()
            .is_none_or(|v| v.trim().is_empty())
        {
            return Err(ConfigError::Invalid(format!(
                "{table}.token_env is required: the variable holding the consumer's bearer \
                 token (not the admin token)"
            )));
        }
        Ok(())
    }
}
