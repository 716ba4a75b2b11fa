//! A TCP proxy the test controls, between idemhook and its database: `cut` drops every
//! connection and refuses new ones (the database "goes away"), `blackhole` keeps every socket
//! open but lets nothing through (a network partition: the driver waits, no error comes), and
//! `restore` lets traffic through again, and `lose_next_commit_answer` lets the next `COMMIT`
//! reach the database but drops the connection instead of passing its answer back (the
//! transaction commits; the client never hears so). Real network faults as the driver sees
//! them, on loopback only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Bumped to drop every open connection.
    generation: watch::Sender<u64>,
    /// While true, connections are held open and nothing is forwarded.
    stalled: watch::Sender<bool>,
    /// Armed by `lose_next_commit_answer`; disarmed by the connection that sends the COMMIT.
    lose_commit: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies `127.0.0.1:<port>` to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let (stalled, _) = watch::channel(false);
        let lose_commit = Arc::new(AtomicBool::new(false));
        let task = Self::serve(
            listener,
            upstream.to_owned(),
            up.clone(),
            generation.clone(),
            stalled.clone(),
            lose_commit.clone(),
        );
        Proxy {
            port,
            up,
            generation,
            stalled,
            lose_commit,
            task,
        }
    }

    fn serve(
        listener: TcpListener,
        upstream: String,
        up: Arc<AtomicBool>,
        generation: watch::Sender<u64>,
        stalled: watch::Sender<bool>,
        lose_commit: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !up.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = generation.subscribe();
                let stall = stalled.subscribe();
                let lose_commit = lose_commit.clone();
                tokio::spawn(async move {
                    let stalled_now = *stall.borrow();
                    if stalled_now {
                        // Accepted, never answered, until the partition ends.
                        let _ = cut.changed().await;
                        drop(client);
                        return;
                    }
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = pump(client, server, lose_commit) => {}
                        _ = cut.changed() => {} // both sockets dropped: connection reset
                        _ = partition(stall) => {
                            // Both sockets stay open; nothing flows until the partition ends.
                            let _ = cut.changed().await;
                        }
                    }
                });
            }
        })
    }

    /// The database disappears: open connections are dropped, new ones closed at once.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    /// The next `COMMIT` any connection sends reaches the database, and its answer is dropped
    /// with the connection: the transaction is committed, and the client sees a reset.
    pub fn lose_next_commit_answer(&self) {
        self.lose_commit.store(true, Ordering::SeqCst);
    }

    /// True once the armed `COMMIT` answer was lost.
    pub fn commit_answer_lost(&self) -> bool {
        !self.lose_commit.load(Ordering::SeqCst)
    }

    /// A partition: every socket stays open and nothing flows either way.
    pub fn blackhole(&self) {
        self.stalled.send_replace(true);
    }

    /// Traffic flows again. Connections held through a partition are dropped (as a real one
    /// ends with their resets), so the driver opens fresh ones.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
        if self.stalled.send_replace(false) {
            self.generation.send_modify(|g| *g += 1);
        }
    }
}

/// Forwards both ways until either side closes. A chunk that carries `COMMIT` while the
/// proxy is armed marks this connection: the database's next answer is dropped, and so is
/// the connection (the client's driver sends one statement and reads its answer before the
/// next, so that answer is the COMMIT's).
async fn pump(client: TcpStream, server: TcpStream, lose_commit: Arc<AtomicBool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let swallow = AtomicBool::new(false);
    let up = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = client_read.read(&mut buf).await?;
            if n == 0 {
                return Ok::<_, std::io::Error>(());
            }
            let chunk = &buf[..n];
            if chunk.windows(6).any(|w| w == b"COMMIT") && lose_commit.swap(false, Ordering::SeqCst)
            {
                swallow.store(true, Ordering::SeqCst);
            }
            server_write.write_all(chunk).await?;
        }
    };
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = server_read.read(&mut buf).await?;
            if n == 0 || swallow.load(Ordering::SeqCst) {
                return Ok::<_, std::io::Error>(());
            }
            client_write.write_all(&buf[..n]).await?;
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Resolves once a partition starts.
async fn partition(mut stall: watch::Receiver<bool>) {
    let _ = stall.wait_for(|s| *s).await.map(|_| ());
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
