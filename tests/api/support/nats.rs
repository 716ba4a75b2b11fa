//! NATS servers of the test's own (Debian's `nats-server`, JetStream on, on free ports, each
//! with its own store), so that a test can stop, restart or kill them: one node
//! ([`NatsNode::start`]) or a three-node JetStream cluster ([`NatsCluster::start`]). And what
//! a test reads back from a stream ([`stream_messages`]).
//!
//! Without `nats-server` on the PATH the NATS tests cannot run: they fail, naming it (CI
//! installs it), rather than pass unseen.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::process::PATIENCE;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One `nats-server` process: its client port, store and (in a cluster) routes. Killed when
/// dropped; its store is removed with it.
pub struct NatsNode {
    pub port: u16,
    args: Vec<String>,
    store: PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    /// One node with JetStream, answering on a free port.
    pub async fn start() -> NatsNode {
        let mut node = Self::new(free_port(), Vec::new());
        node.restart().await;
        node
    }

    fn new(port: u16, extra: Vec<String>) -> NatsNode {
        let store =
            std::env::temp_dir().join(format!("idemhook_nats_{:016x}", rand::random::<u64>()));
        std::fs::create_dir_all(&store).expect("a store directory");
        let mut args = vec![
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-js".to_owned(),
            "-sd".to_owned(),
            store.display().to_string(),
        ];
        args.extend(extra);
        NatsNode {
            port,
            args,
            store,
            child: None,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts (again) the process, same port, same store, and waits until it takes
    /// connections.
    pub async fn restart(&mut self) {
        let child = Command::new("nats-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server is on the PATH (Debian's package nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + PATIENCE;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends the process a signal (`STOP` freezes it: connections stay open, nothing is
    /// answered; `CONT` thaws it).
    pub fn signal(&self, signal: &str) {
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("a running nats-server");
        let status = std::process::Command::new("kill")
            .args([format!("-{signal}"), pid.to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// Three nodes routed to each other as one JetStream cluster.
pub struct NatsCluster {
    pub nodes: Vec<NatsNode>,
}

impl NatsCluster {
    pub async fn start() -> NatsCluster {
        let routes: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let all_routes = routes
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let cluster = format!("c{:08x}", rand::random::<u32>());
        let mut nodes = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let extra = vec![
                "-n".to_owned(),
                format!("{cluster}-n{i}"),
                "--cluster_name".to_owned(),
                cluster.clone(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{route}"),
                "--routes".to_owned(),
                all_routes.clone(),
            ];
            nodes.push(NatsNode::new(free_port(), extra));
        }
        for node in &mut nodes {
            node.restart().await;
        }
        NatsCluster { nodes }
    }

    /// Every node's URL, as a TOML array.
    pub fn urls_toml(&self) -> String {
        let urls: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"{}\"", n.url()))
            .collect();
        format!("[{}]", urls.join(", "))
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsNode::url).collect()
    }
}

/// A JetStream context on `urls`.
pub async fn jetstream(urls: &[String]) -> jetstream::Context {
    let addrs: Vec<async_nats::ServerAddr> =
        urls.iter().map(|u| u.parse().expect("a URL")).collect();
    let client = async_nats::ConnectOptions::new()
        .retry_on_initial_connect()
        .connect(addrs)
        .await
        .expect("a NATS client");
    jetstream::new(client)
}

/// Creates the stream `name` capturing `subjects`, with `replicas` copies; retried while a
/// new cluster elects its leaders.
pub async fn create_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &[&str],
    replicas: usize,
) {
    let config = stream::Config {
        name: name.to_owned(),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        num_replicas: replicas,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        match js.get_or_create_stream(config.clone()).await {
            Ok(_) => return,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot create the stream {name}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// One message read back from a stream.
#[derive(Debug, Clone)]
pub struct Stored {
    pub subject: String,
    pub msg_id: String,
    pub headers: Vec<(String, String)>,
    pub payload: Vec<u8>,
    /// When the stream stored it, in nanoseconds since the epoch.
    pub stored_at_ns: i128,
}

impl Stored {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Every message the stream holds, in order (read one by one by sequence; retried while a
/// cluster elects a leader).
pub async fn stream_messages(js: &jetstream::Context, name: &str) -> Vec<Stored> {
    let deadline = Instant::now() + PATIENCE;
    let stream = loop {
        match js.get_stream(name).await {
            Ok(stream) => break stream,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot read the stream {name}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    let state = stream.cached_info().state.clone();
    let mut out = Vec::new();
    for seq in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let message = loop {
            match stream.get_raw_message(seq).await {
                Ok(m) => break Some(m),
                Err(e) if e.to_string().contains("not found") => break None,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot read message {seq}: {e}");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
            }
        };
        let Some(message) = message else { continue };
        let headers: Vec<(String, String)> = message
            .headers
            .iter()
            .flat_map(|(k, values)| {
                values
                    .iter()
                    .map(move |v| (k.to_string(), v.as_str().to_owned()))
            })
            .collect();
        let msg_id = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("Nats-Msg-Id"))
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        out.push(Stored {
            subject: message.subject.to_string(),
            msg_id,
            headers,
            payload: message.payload.to_vec(),
            stored_at_ns: message.time.unix_timestamp_nanos(),
        });
    }
    out
}
