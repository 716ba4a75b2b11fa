//! `secret_env`: the environment variable that holds a secret, or a list of them while a
//! secret is rotated. Sources verify with any of them; a forward table signs with each.

use serde::{Deserialize, Serialize};

use super::Environment;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum SecretEnv {
    One(String),
    Many(Vec<String>),
}

impl SecretEnv {
    pub fn names(&self) -> Vec<&str> {
        match self {
            SecretEnv::One(name) => vec![name.as_str()],
            SecretEnv::Many(names) => names.iter().map(String::as_str).collect(),
        }
    }
}

/// A decoder of a secret's text into its key (`whsec_` base64, or the bytes as they are).
pub type Decode = fn(&str) -> Result<Vec<u8>, String>;

/// Each listed variable with its key, `None` when it is not set or empty.
pub type Keys<'a> = Vec<(&'a str, Option<Vec<u8>>)>;

impl SecretEnv {
    /// Each listed variable's key, decoded: `None` for a variable that is not set or empty
    /// (surrounding white space trimmed; the caller says whether that is allowed). A value
    /// that does not decode, or decodes to no key at all (`whsec_` alone: an HMAC under an
    /// empty key is one anybody can compute), is an error naming the variable.
    pub fn keys<'a>(&'a self, env: &Environment, decode: Decode) -> Result<Keys<'a>, String> {
        let mut keys = Vec::new();
        for var in self.names() {
            let value = env.get(var).unwrap_or("").trim();
            if value.is_empty() {
                keys.push((var, None));
                continue;
            }
            let key = decode(value).map_err(|e| format!("the secret in {var} is invalid: {e}"))?;
            if key.is_empty() {
                return Err(format!(
                    "the secret in {var} is empty once decoded: anyone could sign with it"
                ));
            }
            keys.push((var, Some(key)));
        }
        Ok(keys)
    }
}
