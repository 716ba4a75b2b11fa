//! The real `idemhook` binary as a child process, on a real socket: for what only a process
//! can show (signals, kill -9, logs, restarts). Cargo builds the binary once for the suite,
//! with the `test-handlers` feature, and tells us where it is.

use std::io::Write;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

pub struct Server {
    pub child: Child,
    pub base: String,
    dir: PathBuf,
    /// Every line the process wrote to stdout or stderr.
    logs: mpsc::UnboundedReceiver<String>,
    seen: Vec<String>,
}

/// A port free right now. Another process could take it before the server binds it; on this
/// machine's loopback that race is theoretical.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Server {
    /// Starts the binary with `rocket_toml` as its whole configuration (the port is added)
    /// and `env` on top of a clean environment, and waits until it answers.
    pub async fn start(rocket_toml: &str, env: &[(&str, &str)]) -> Server {
        Self::start_on(free_port(), rocket_toml, env).await
    }

    pub async fn start_on(port: u16, rocket_toml: &str, env: &[(&str, &str)]) -> Server {
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
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Server {
            child,
            base: format!("http://127.0.0.1:{port}"),
            dir,
            logs,
            seen: Vec::new(),
        };
        server.wait_ready().await;
        server
    }

    async fn wait_ready(&mut self) {
        let client = reqwest::Client::new();
        for _ in 0..600 {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "idemhook exited during startup ({status}):\n{}",
                    self.logs().join("\n")
                );
            }
            if let Ok(r) = client
                .get(format!("{}/health/live", self.base))
                .send()
                .await
            {
                if r.status().is_success() {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "idemhook did not answer within 60 s:\n{}",
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

    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the process to exit, and for its last log lines.
    pub async fn wait(&mut self) -> std::process::ExitStatus {
        let status = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("exits within 60 s")
            .expect("wait");
        tokio::time::sleep(Duration::from_millis(100)).await;
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
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
