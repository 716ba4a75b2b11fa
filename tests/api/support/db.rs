//! A database that exists for one test, on each backend.
//!
//! SQLite is a file in the temp directory. PostgreSQL and MariaDB/MySQL need a server named by
//! `IDEMHOOK_TEST_POSTGRES_URL` / `IDEMHOOK_TEST_MYSQL_URL`: each test creates its own
//! database there (`idemhook_t_<random>`) and drops it when it ends, so tests run in parallel
//! without a lock. Without the variable the server variants are compiled as ignored (see
//! `build.rs`); running them anyway (`--ignored`) fails with the variable to set.

use std::path::PathBuf;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, QueryResult, Statement};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl Backend {
    /// The variable that names the backend's server (an admin URL whose path is a database
    /// the test may connect to); `None` for SQLite, which needs no server.
    pub fn server_var(self) -> Option<&'static str> {
        match self {
            Backend::Sqlite => None,
            Backend::Postgres => Some("IDEMHOOK_TEST_POSTGRES_URL"),
            Backend::MySql => Some("IDEMHOOK_TEST_MYSQL_URL"),
        }
    }
}

/// A database that exists for one test.
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    /// The server URL the database was created through, to drop it again.
    admin_url: Option<String>,
    name: String,
    /// SQLite's file, removed (with its `-wal` and `-shm`) at the end.
    file: Option<PathBuf>,
}

/// A name no other test uses: tests run in parallel, on the same server.
pub fn random_db_name() -> String {
    format!("idemhook_t_{:016x}", rand::random::<u64>())
}

impl TestDb {
    /// A fresh, empty database.
    ///
    /// # Panics
    ///
    /// For a server backend whose variable is unset, naming the variable: such a test is
    /// compiled as ignored and only gets here when ignored tests are asked for explicitly.
    pub async fn create(backend: Backend) -> TestDb {
        let name = random_db_name();
        let Some(var) = backend.server_var() else {
            let path = std::env::temp_dir().join(format!("{name}.db"));
            return TestDb {
                backend,
                url: format!("sqlite://{}?mode=rwc", path.display()),
                admin_url: None,
                name,
                file: Some(path),
            };
        };
        let admin = std::env::var(var)
            .ok()
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| {
                panic!("the {backend:?} variant needs a database server: set {var}")
            });
        let conn = Database::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("{var} ({admin}) is set but unreachable: {e}"));
        conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create the test database");
        let _ = conn.close().await;
        let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
        TestDb {
            backend,
            url: format!("{base}/{name}"),
            admin_url: Some(admin.clone()),
            name,
            file: None,
        }
    }

    pub async fn connect(&self) -> DatabaseConnection {
        Database::connect(&self.url)
            .await
            .expect("connect to the test database")
    }

    /// Drops the database. Called at the end of a test; a failed test leaves it behind for
    /// inspection (`.ci/run` sweeps `idemhook_t_%` leftovers before each run).
    pub async fn drop_db(self) {
        if let Some(admin) = &self.admin_url {
            if let Ok(conn) = Database::connect(admin).await {
                let force = if self.backend == Backend::Postgres {
                    " WITH (FORCE)"
                } else {
                    ""
                };
                let _ = conn
                    .execute_unprepared(&format!("DROP DATABASE IF EXISTS {}{force}", self.name))
                    .await;
                let _ = conn.close().await;
            }
        }
        if let Some(file) = &self.file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{}{suffix}", file.display()));
            }
        }
    }
}

/// The first row `sql` returns, read straight from the database (a count, a setting, a row's
/// columns), bypassing the app.
///
/// # Panics
///
/// When the statement fails or returns no row.
/// idemhook's own pool on `url` (the test database's, or a proxy's in front of it), as the app
/// opens it with `settings` (session limits, pool size), migrated.
pub async fn app_pool(url: &str, settings: &idemhook::config::Settings) -> DatabaseConnection {
    let conn = idemhook::db::connect(url, settings).await.expect("connect");
    idemhook::db::migrate(url, &conn).await.expect("migrate");
    conn
}

pub async fn query_row(conn: &impl ConnectionTrait, sql: &str) -> QueryResult {
    conn.query_one_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// Runs `sql` straight on the database, bypassing the app.
pub async fn execute(conn: &impl ConnectionTrait, sql: &str) {
    conn.execute_raw(Statement::from_string(conn.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}
