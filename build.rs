//! Tells the integration tests which database servers they may use.
//!
//! Every scenario runs on SQLite, PostgreSQL and MariaDB/MySQL (`tests/api/support`). A
//! variant whose server is not configured must not pass by returning early: libtest would
//! count it as a pass, and a run without servers would look as green as a run with them. A
//! test can only be reported as skipped if it is marked `#[ignore]` when it is compiled, so
//! this script turns `IDEMHOOK_TEST_POSTGRES_URL` and `IDEMHOOK_TEST_MYSQL_URL` into the cfgs
//! `idemhook_test_postgres` and `idemhook_test_mysql`. Without its cfg, a server variant is
//! compiled as `#[ignore = "no database server: set …"]`, and libtest prints it as ignored,
//! with that reason. Setting or changing a variable reruns this script and recompiles the
//! package: cargo passes the cfgs to every target, though only the tests read them.

fn main() {
    for (var, cfg) in [
        ("IDEMHOOK_TEST_POSTGRES_URL", "idemhook_test_postgres"),
        ("IDEMHOOK_TEST_MYSQL_URL", "idemhook_test_mysql"),
    ] {
        println!("cargo::rerun-if-env-changed={var}");
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if std::env::var(var).is_ok_and(|url| !url.is_empty()) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
