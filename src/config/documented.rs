//! Rocket.toml is the one description of every configuration key: this test fails when a key
//! the config accepts is not written there (set, or commented out with its default), so a new
//! key cannot ship undocumented.

use serde_json::{Map, Value};

use super::{AuthConfig, ForwardConfig, Settings, SourceConfig, TracesConfig};

const ROCKET_TOML: &str = include_str!("../../Rocket.toml");

/// The keys of a config table, as its defaults serialize (every field, `None` as null).
fn keys<T: serde::Serialize>(table: &T) -> Vec<String> {
    match serde_json::to_value(table) {
        Ok(Value::Object(map)) => Map::into_iter(map).map(|(key, _)| key).collect(),
        other => panic!("a config table serializes to an object, not {other:?}"),
    }
}

/// `key = …` on a line of its own, set or commented out (`# key = …`).
fn documented(key: &str) -> bool {
    ROCKET_TOML.lines().any(|line| {
        let line = line.trim_start().trim_start_matches('#').trim_start();
        line.strip_prefix(key)
            .is_some_and(|rest| rest.trim_start().starts_with('='))
    })
}

#[test]
fn every_key_the_config_accepts_is_in_rocket_toml() {
    let tables = [
        ("[default.idemhook]", keys(&Settings::default())),
        (
            "[default.idemhook.sources.<name>]",
            keys(&SourceConfig::default()),
        ),
        (
            "[default.idemhook.sources.<name>.forward]",
            keys(&ForwardConfig::default()),
        ),
        ("[default.idemhook.auth]", keys(&AuthConfig::default())),
        ("[default.idemhook.tracing]", keys(&TracesConfig::default())),
        (
            "[default.idemhook.operators.<name>]",
            vec!["token_env".to_owned(), "role".to_owned()],
        ),
    ];
    let missing: Vec<String> = tables
        .iter()
        .flat_map(|(table, keys)| {
            keys.iter()
                // Tables of their own, documented by their keys.
                .filter(|key| {
                    !matches!(
                        key.as_str(),
                        "sources" | "forward" | "destinations" | "operators" | "auth" | "tracing"
                    )
                })
                .filter(|key| !documented(key))
                .map(move |key| format!("{table} {key}"))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "keys the config accepts but Rocket.toml does not describe (write `key = default` or \
         `# key = example` with a comment): {missing:?}"
    );
}

#[test]
fn the_check_finds_a_missing_key() {
    assert!(documented("shards"));
    assert!(!documented("no_such_key"));
}
