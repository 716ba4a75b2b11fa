//! A TCP proxy the test controls, between idemhook and its database: `cut` drops every
//! connection and refuses new ones (the database "goes away"), `blackhole` keeps every socket
//! open but lets nothing through (a network partition: the driver waits, no error comes), and
//! `restore` lets traffic through again, and `lose_next_commit_answer` lets the next `COMMIT`
//! reach the database but drops the connection instead of passing its answer back (the
//! transaction commits; the client never hears so); `lose_next_answer_to` does the same for
//! the next message that carries given bytes (a statement that commits on its own). Real
//! network faults as the driver sees them, on loopback only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

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
    /// The bytes whose answer to lose, armed by `lose_next_answer_to`; taken by the connection
    /// that sends them.
    lose_answer: Armed,
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
        let lose_answer = Armed::default();
        let task = Self::serve(
            listener,
            upstream.to_owned(),
            up.clone(),
            generation.clone(),
            stalled.clone(),
            lose_answer.clone(),
        );
        Proxy {
            port,
            up,
            generation,
            stalled,
            lose_answer,
            task,
        }
    }

    fn serve(
        listener: TcpListener,
        upstream: String,
        up: Arc<AtomicBool>,
        generation: watch::Sender<u64>,
        stalled: watch::Sender<bool>,
        lose_answer: Armed,
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
                let lose_answer = lose_answer.clone();
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
                        _ = pump(client, server, lose_answer) => {}
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
        self.lose_next_answer_to(b"COMMIT");
    }

    /// The next message any connection sends that carries `needle` reaches the database, and
    /// its answer is dropped with the connection.
    pub fn lose_next_answer_to(&self, needle: &[u8]) {
        *lock(&self.lose_answer) = Some(needle.to_vec());
    }

    /// True once the armed answer was lost.
    pub fn commit_answer_lost(&self) -> bool {
        lock(&self.lose_answer).is_none()
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

/// What `lose_next_answer_to` armed: `None` once a connection has taken it.
type Armed = Arc<Mutex<Option<Vec<u8>>>>;

fn lock(armed: &Armed) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
    armed
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Forwards both ways until either side closes. A chunk that carries the armed bytes marks
/// this connection: the database's next answer is dropped, and so is the connection (the
/// client's driver sends one statement and reads its answer before the next, so that answer
/// is the statement's).
async fn pump(client: TcpStream, server: TcpStream, lose_answer: Armed) {
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
            {
                let mut armed = lock(&lose_answer);
                let carries = |needle: &Vec<u8>| chunk.windows(needle.len()).any(|w| w == needle);
                if armed.as_ref().is_some_and(carries) {
                    *armed = None;
                    swallow.store(true, Ordering::SeqCst);
                }
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
