//! A three-node MariaDB Galera cluster (`scripts/galera.sh start`), taken by one test at a
//! time ([`Cluster`]): the slow Galera scenarios of `galera.rs` and `forward/galera.rs`.
//!
//! `IDEMHOOK_TEST_GALERA_URLS` lists the three nodes' URLs (comma-separated, no database);
//! the tests that need it are ignored unless asked for, and then fail without it. `.ci/run`
//! starts the cluster and sets it.

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database};

use super::db::random_db_name;

/// Held by each test that uses the cluster for its whole run: they kill nodes, and a test
/// running beside another's node kill would see its 503s.
static CLUSTER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The cluster, taken by one test: its turn on the cluster, and a fresh database on it.
pub struct Cluster {
    _turn: tokio::sync::MutexGuard<'static, ()>,
    /// Each node's URL with the test's database.
    pub urls: Vec<String>,
    name: String,
    admin: sea_orm::DatabaseConnection,
}

impl Cluster {
    /// Waits for the cluster, then creates a database on it (Galera replicates the DDL).
    pub async fn take() -> Cluster {
        let turn = CLUSTER.lock().await;
        let nodes = node_urls();
        let name = random_db_name();
        let admin = Database::connect(format!("{}/mysql", nodes[0]))
            .await
            .expect("node 1");
        admin
            .execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        let urls = nodes.iter().map(|n| format!("{n}/{name}")).collect();
        Cluster {
            _turn: turn,
            urls,
            name,
            admin,
        }
    }

    /// Kills node 2 now (`scripts/galera.sh kill 2`) and restarts it 3 s later.
    pub fn kill_node_2(&self) {
        let script = format!("{}/scripts/galera.sh", env!("CARGO_MANIFEST_DIR"));
        let status = std::process::Command::new(&script)
            .args(["kill", "2"])
            .status();
        assert!(status.is_ok_and(|s| s.success()), "kill node 2");
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(3));
            let ok = std::process::Command::new(&script)
                .args(["restart", "2"])
                .status();
            eprintln!("galera: node 2 restarted: {ok:?}");
        });
    }

    pub async fn drop_db(self) {
        let _ = self
            .admin
            .execute_unprepared(&format!("DROP DATABASE {}", self.name))
            .await;
    }
}

/// The three nodes' URLs.
///
/// # Panics
///
/// When `IDEMHOOK_TEST_GALERA_URLS` does not list three: the test is ignored unless asked for,
/// and then it needs the cluster.
fn node_urls() -> Vec<String> {
    let urls: Vec<String> = std::env::var("IDEMHOOK_TEST_GALERA_URLS")
        .unwrap_or_default()
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_owned())
        .filter(|u| !u.is_empty())
        .collect();
    assert!(
        urls.len() == 3,
        "the Galera test needs its cluster: start scripts/galera.sh and set \
         IDEMHOOK_TEST_GALERA_URLS to its three nodes' URLs, comma-separated (got {urls:?})"
    );
    urls
}
