//! A TCP proxy the test controls, between idemhook and its database: `cut` drops every
//! connection and refuses new ones (the database "goes away"), `blackhole` keeps every socket
//! open but lets nothing through (a network partition: the driver waits, no error comes), and
//! `restore` lets traffic through again. Real network faults as the driver sees them, on
//! loopback only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    /// Bumped to drop every open connection.
    generation: watch::Sender<u64>,
    /// While true, connections are held open and nothing is forwarded.
    stalled: watch::Sender<bool>,
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
        let task = Self::serve(
            listener,
            upstream.to_owned(),
            up.clone(),
            generation.clone(),
            stalled.clone(),
        );
        Proxy {
            port,
            up,
            generation,
            stalled,
            task,
        }
    }

    fn serve(
        listener: TcpListener,
        upstream: String,
        up: Arc<AtomicBool>,
        generation: watch::Sender<u64>,
        stalled: watch::Sender<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !up.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let upstream = upstream.clone();
                let mut cut = generation.subscribe();
                let stall = stalled.subscribe();
                tokio::spawn(async move {
                    let stalled_now = *stall.borrow();
                    if stalled_now {
                        // Accepted, never answered, until the partition ends.
                        let _ = cut.changed().await;
                        drop(client);
                        return;
                    }
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
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

/// Resolves once a partition starts.
async fn partition(mut stall: watch::Receiver<bool>) {
    let _ = stall.wait_for(|s| *s).await.map(|_| ());
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
