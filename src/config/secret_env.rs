//! `secret_env`: the environment variable that holds a secret, or a list of them while a
//! secret is rotated. Sources verify with any of them; a forward table signs with each.

use serde::{Deserialize, Serialize};

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
