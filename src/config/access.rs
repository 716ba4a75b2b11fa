//! `[default.idemhook.operators.<name>]`: who may use the admin API and the console, each
//! with a role. `IDEMHOOK_ADMIN_TOKEN` is the operator `admin` with role `operate`.

use serde::{Deserialize, Serialize};
use smart_default::SmartDefault;
use validator::Validate;

use super::{invalid, valid_destination_name, ConfigError, SecretEnv};

/// What an operator may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, views, the audit: nothing that changes state.
    Read,
    /// Also replay (forced too), redeliver, redrive, pause, resume, discard.
    Operate,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
        }
    }
}

/// One operator's table. The role has no default: an operator's power is written down.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct OperatorConfig {
    /// The variable holding the operator's bearer token, or a list while it is rotated
    /// (each signs in; removing one ends the sessions made with it).
    pub token_env: SecretEnv,
    pub role: Role,
}

/// `[default.idemhook.auth]`: limits on guessing credentials (see Rocket.toml).
#[derive(Debug, Clone, Serialize, Deserialize, SmartDefault, Validate, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Failed authentications one client address may make in a minute before it is answered
    /// 429 until the minute ends.
    #[default = 10]
    #[validate(range(min = 1, max = 100_000))]
    pub failures_per_minute: u32,
    /// Proxies (addresses or CIDR networks) whose `client_ip_header` is believed.
    pub trusted_proxies: Vec<String>,
    /// The header a trusted proxy appends the client's address to.
    #[default = "X-Forwarded-For"]
    pub client_ip_header: String,
}

impl AuthConfig {
    pub(super) fn validate_table(&self) -> Result<(), ConfigError> {
        Validate::validate(self).map_err(|e| invalid("idemhook.auth", &e))?;
        self.trusted_networks().map_err(ConfigError::Invalid)?;
        if self.client_ip_header.is_empty()
            || !self
                .client_ip_header
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(ConfigError::Invalid(format!(
                "idemhook.auth.client_ip_header = {:?} is not a header name",
                self.client_ip_header
            )));
        }
        Ok(())
    }

    /// `trusted_proxies`, parsed: an address is a network of one.
    pub fn trusted_networks(&self) -> Result<Vec<ipnet::IpNet>, String> {
        self.trusted_proxies
            .iter()
            .map(|p| {
                p.parse::<ipnet::IpNet>()
                    .or_else(|_| p.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        format!(
                            "idemhook.auth.trusted_proxies holds {p:?}: not an address or a \
                             network (10.0.0.0/8, 2001:db8::/32)"
                        )
                    })
            })
            .collect()
    }
}

/// The name `IDEMHOOK_ADMIN_TOKEN` signs in as.
pub const ADMIN_OPERATOR: &str = "admin";

/// A name is what the audit and the console show: 1 to 64 of a-z, 0-9, `_` and `-`.
pub fn validate_operator(name: &str, cfg: &OperatorConfig) -> Result<(), ConfigError> {
    let table = format!("idemhook.operators.{name}");
    if !valid_destination_name(name) {
        return Err(ConfigError::Invalid(format!(
            "idemhook.operators.{name:?}: an operator's name is 1 to 64 of a-z, 0-9, '_' and '-'"
        )));
    }
    if cfg.token_env.names().is_empty() {
        return Err(ConfigError::Invalid(format!(
            "{table}.token_env lists no variable"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_role_is_required_and_spelled_out() {
        let ok: OperatorConfig =
            serde_json::from_value(serde_json::json!({"token_env": "A", "role": "read"})).unwrap();
        assert_eq!(ok.role, Role::Read);
        for bad in [
            serde_json::json!({"token_env": "A"}),
            serde_json::json!({"token_env": "A", "role": "admin"}),
            serde_json::json!({"token_env": "A", "role": "read", "tokens": "x"}),
        ] {
            assert!(serde_json::from_value::<OperatorConfig>(bad).is_err());
        }
        let list: OperatorConfig = serde_json::from_value(
            serde_json::json!({"token_env": ["NEW", "OLD"], "role": "operate"}),
        )
        .unwrap();
        assert_eq!(list.token_env.names(), ["NEW", "OLD"]);
        assert!(validate_operator("Alice", &ok).is_err());
        assert!(validate_operator("alice", &ok).is_ok());
        let empty = OperatorConfig {
            token_env: SecretEnv::Many(vec![]),
            role: Role::Read,
        };
        assert!(validate_operator("alice", &empty).is_err());
    }

    #[test]
    fn auth_limits_are_checked_naming_the_key() {
        let ok = AuthConfig {
            trusted_proxies: vec!["10.0.0.0/8".into(), "192.0.2.7".into(), "::1".into()],
            ..AuthConfig::default()
        };
        assert_eq!(ok.trusted_networks().unwrap().len(), 3);
        assert!(ok.validate_table().is_ok());
        let bad = AuthConfig {
            trusted_proxies: vec!["10.0.0.0/33".into()],
            ..AuthConfig::default()
        };
        let err = bad.validate_table().unwrap_err().to_string();
        assert!(
            err.contains("idemhook.auth.trusted_proxies holds \"10.0.0.0/33\""),
            "{err}"
        );
        let zero = AuthConfig {
            failures_per_minute: 0,
            ..AuthConfig::default()
        };
        let err = zero.validate_table().unwrap_err().to_string();
        assert!(
            err.contains("idemhook.auth.failures_per_minute = 0"),
            "{err}"
        );
        let header = AuthConfig {
            client_ip_header: "X Forwarded".into(),
            ..AuthConfig::default()
        };
        assert!(header.validate_table().is_err());
    }
}
