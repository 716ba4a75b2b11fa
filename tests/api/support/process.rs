//! The real `idemhook` binary as a child process, on a real socket: for what only a process
//! or a socket can show (signals, kill -9, restarts, logs, launch failures, HTTP framing,
//! concurrent connections). Cargo builds the binary once for the suite, with the
//! `test-handlers` feature, and tells us where it is.
//!
//! Every real-binary test configures it with [`config`] and [`ENV`], and talks to it with
//! [`post`] (an HTTP client) or `super::socket::raw` (bytes on a fresh connection).

use std::io::Write;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::time::{timeout, Instant};

/// How long the binary may take to start, to exit, to log an awaited line or to answer a raw
/// request. Generous, because the suite runs many processes at once on small machines: a
/// bound that turns a hang into a failure, never an assertion on speed.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// The `handlers` line of the `demo` source in [`config`]. `sleep` (the binary's test-only
/// handler) runs last, so when it holds the transaction open the others have written in it.
/// A test that needs another list replaces this line.
pub const DEMO_HANDLERS: &str = r#"handlers = ["inbox", "payments", "sleep"]"#;

/// The secrets the sources of [`config`] read from the environment.
pub const ENV: [(&str, &str); 2] = [
    ("STD_SECRET", "whsec_c3RhbmRhcmQtd2ViaG9va3MtdGVzdC1rZXk="),
    ("STRIPE_SECRET", "whsec_TOPSECRET_stripe_key_123"),
];

/// The whole Rocket.toml of a real-binary test: the database, JSON logs, then `extra` (keys of
/// `[default.idemhook]`, then any tables the test adds), then the shared sources: `demo`
/// ([`DEMO_HANDLERS`]), `strict` (refuses events without an id), `std` (Standard Webhooks) and
/// `stripe`, whose secrets are in [`ENV`].
pub fn config(db_url: &str, extra: &str) -> String {
    format!(
        r#"
[default]
log_level = "normal"
[default.idemhook]
database_url = "{db_url}"
log_format = "json"
{extra}
[default.idemhook.sources.demo]
{DEMO_HANDLERS}
[default.idemhook.sources.strict]
on_missing_id = "reject"
[default.idemhook.sources.std]
provider = "standard"
secret_env = "STD_SECRET"
[default.idemhook.sources.stripe]
provider = "stripe"
secret_env = "STRIPE_SECRET"
handlers = ["inbox", "payments"]
"#
    )
}

/// Posts `body` as a provider retries: until it is answered 200 (every 100 ms, at most 100
/// times, while the server recovers); returns the last answer.
pub async fn post_until_ok(
    client: &reqwest::Client,
    server: &Server,
    source: &str,
    body: &str,
) -> (u16, String, Option<String>) {
    let mut reply = (0, String::new(), None);
    for _ in 0..100 {
        reply = post(client, server, source, body, &[]).await;
        if reply.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    reply
}

/// Posts `body` to `/webhooks/<source>`: (status, body, Retry-After). Status 0 means no
/// answer (the connection failed), with the error as the body.
pub async fn post(
    client: &reqwest::Client,
    server: &Server,
    source: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, String, Option<String>) {
    let mut req = client
        .post(format!("{}/webhooks/{source}", server.base))
        .body(body.to_owned());
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status().as_u16();
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (status, r.text().await.unwrap_or_default(), retry)
        }
        Err(e) => (0, e.to_string(), None),
    }
}

pub struct Server {
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    child: Child,
    /// The directory holding its Rocket.toml; its working directory.
    dir: PathBuf,
    /// Every line the process writes to stdout or stderr, as it comes; closed when both end.
    logs: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

/// A port free right now. Another process could take it before the server binds it; on this
/// machine's loopback that race is theoretical.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Whether the process `pid` holds the socket listening on 127.0.0.1:`port` (the inode of
/// that socket in `/proc/net/tcp` among the process's file descriptors). Where `/proc`
/// cannot say, it is assumed to.
fn listens_on(pid: u32, port: u16) -> bool {
    let Ok(table) = std::fs::read_to_string("/proc/net/tcp") else {
        return true;
    };
    let local = format!("0100007F:{port:04X}");
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // local address, state 0A (LISTEN), inode
        (fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&"0A"))
            .then(|| fields.get(9).map(|s| (*s).to_owned()))
            .flatten()
    });
    let Some(inode) = inode else {
        return true;
    };
    let wanted = format!("socket:[{inode}]");
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return true;
    };
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.to_string_lossy() == wanted)
    })
}

impl Server {
    /// Starts the binary with `rocket_toml` as its whole configuration (the port is added)
    /// and `env` on top of a clean environment, and waits until it answers.
    ///
    /// The free port is picked before the binary binds it, so another test's server may
    /// take it first; then the `/health/live` that answers is that other server's. The
    /// port is checked to be this process's listening socket (Linux's `/proc`), else the
    /// binary is started again on another port.
    pub async fn start(rocket_toml: &str, env: &[(&str, &str)]) -> Server {
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self::spawn(port, rocket_toml, env);
            server.wait_ready().await;
            if server.child.id().is_some_and(|pid| listens_on(pid, port)) {
                return server;
            }
            let _ = server.child.kill().await;
        }
        panic!("five free ports in a row were taken by another process");
    }

    /// Starts the binary like [`Server::start`], expecting it to refuse to launch: waits for
    /// it to exit and returns its exit status and every line it wrote.
    pub async fn launch_fails(
        rocket_toml: &str,
        env: &[(&str, &str)],
    ) -> (ExitStatus, Vec<String>) {
        let mut server = Self::spawn(free_port(), rocket_toml, env);
        let status = server.wait().await;
        (status, server.logs())
    }

    fn spawn(port: u16, rocket_toml: &str, env: &[(&str, &str)]) -> Server {
        let dir = std::env::temp_dir().join(format!("idemhook_p_{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let config = dir.join("Rocket.toml");
        let mut f = std::fs::File::create(&config).expect("config file");
        f.write_all(rocket_toml.as_bytes()).expect("write config");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_idemhook"));
        cmd.current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ROCKET_CONFIG", &config)
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_ADDRESS", "127.0.0.1")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn idemhook");
        let (tx, logs) = mpsc::unbounded_channel();
        let stdout = child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>);
        let stderr = child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn AsyncRead + Unpin + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let tx = tx.clone();
            tokio::spawn(async move {
                // Lines are read as bytes: one that is not UTF-8 must not end the reading.
                let mut reader = BufReader::new(stream);
                let mut line = Vec::new();
                while reader
                    .read_until(b'\n', &mut line)
                    .await
                    .is_ok_and(|n| n > 0)
                {
                    let text = String::from_utf8_lossy(&line);
                    let _ = tx.send(text.trim_end_matches(['\r', '\n']).to_owned());
                    line.clear();
                }
            });
        }
        Server {
            base: format!("http://127.0.0.1:{port}"),
            child,
            dir,
            logs,
            seen: Vec::new(),
        }
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("an HTTP client");
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                let status = self.wait().await;
                panic!(
                    "idemhook exited during startup ({status}):\n{}",
                    self.logs().join("\n")
                );
            }
            let live = client
                .get(format!("{}/health/live", self.base))
                .send()
                .await;
            if live.is_ok_and(|r| r.status().is_success()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "idemhook did not answer within {PATIENCE:?}:\n{}",
            self.logs().join("\n")
        );
    }

    /// The log lines so far.
    pub fn logs(&mut self) -> Vec<String> {
        while let Ok(line) = self.logs.try_recv() {
            self.seen.push(line);
        }
        self.seen.clone()
    }

    /// Waits until a log line contains `needle`, and returns it.
    pub async fn wait_for_log(&mut self, needle: &str) -> String {
        if let Some(line) = self.logs().into_iter().find(|l| l.contains(needle)) {
            return line;
        }
        let deadline = Instant::now() + PATIENCE;
        loop {
            let next = tokio::time::timeout_at(deadline, self.logs.recv()).await;
            match next {
                Ok(Some(line)) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Ok(None) => panic!(
                    "idemhook's output ended without {needle:?}:\n{}",
                    self.seen.join("\n")
                ),
                Err(_) => panic!(
                    "no log line with {needle:?} within {PATIENCE:?}:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Sends a signal (`TERM`, `KILL`…) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, then for the end of its output, so that
    /// [`Server::logs`] holds every line it wrote.
    pub async fn wait(&mut self) -> ExitStatus {
        let exited = timeout(PATIENCE, self.child.wait()).await;
        let status = match exited {
            Ok(status) => status.expect("wait for idemhook"),
            Err(_) => panic!(
                "idemhook still runs after {PATIENCE:?}:\n{}",
                self.logs().join("\n")
            ),
        };
        while let Ok(Some(line)) = timeout(PATIENCE, self.logs.recv()).await {
            self.seen.push(line);
        }
        status
    }

    /// Polls `/health/ready` (every 100 ms, up to `seconds`) and returns the last status.
    pub async fn ready_within(&self, seconds: u64) -> u16 {
        let client = reqwest::Client::new();
        let mut status = 0;
        for _ in 0..seconds * 10 {
            status = client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                .map_or(0, |r| r.status().as_u16());
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        status
    }

    /// The value of the first `/metrics` line that starts with `line_prefix`.
    pub async fn metric(&self, line_prefix: &str) -> Option<f64> {
        let text = reqwest::get(format!("{}/metrics", self.base))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find(|l| l.starts_with(line_prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    }

    /// Waits until the metric reaches `at_least`.
    pub async fn wait_for_metric(&self, line_prefix: &str, at_least: f64) {
        let deadline = Instant::now() + PATIENCE;
        let mut value = None;
        while Instant::now() < deadline {
            value = self.metric(line_prefix).await;
            if value.is_some_and(|v| v >= at_least) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{line_prefix} never reached {at_least} (last seen: {value:?})");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
