//! The CLI through its own process, as an operator runs it against a server.

use std::path::PathBuf;

use super::app::ADMIN_TOKEN;

/// What a command printed and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `idemhook <args>` in `dir` (whose Rocket.toml `migrate` reads) with a clean
/// environment: the server's URL and, when `token`, the admin token.
pub async fn idemhook(dir: &PathBuf, base: &str, token: bool, args: &[&str]) -> Run {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_idemhook"));
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("IDEMHOOK_URL", base)
        .env("USER", "bob")
        .args(args);
    if token {
        cmd.env("IDEMHOOK_ADMIN_TOKEN", ADMIN_TOKEN);
    }
    // A command that never ends (a job followed forever) fails the test, not the suite.
    cmd.kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("idemhook {args:?} still running after 60 s"))
        .expect("the CLI runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
