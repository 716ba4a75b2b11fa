//! A TCP proxy the test controls, between idemhook and its database: `cut` drops every
//! connection and refuses new ones (the database "goes away"), `restore` lets them through
//! again. This is a real network fault as the driver sees it, on loopback only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Proxies `127.0.0.1:<port>` to `upstream` (`host:port`).
    pub async fn start(upstream: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let task = Self::serve(
            listener,
            upstream.to_owned(),
            up.clone(),
            generation.clone(),
        );
        Proxy {
            port,
            up,
            generation,
            task,
        }
    }

    fn serve(
        listener: TcpListener,
        upstream: String,
        up: Arc<AtomicBool>,
        generation: watch::Sender<u64>,
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
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.changed() => {} // both sockets dropped: connection reset
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

    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
