//! Raw bytes on a fresh connection to the real binary: the requests no HTTP client would
//! send (invalid UTF-8 in headers, a lying Content-Length, a garbage request line), to prove
//! the HTTP layer and the routes refuse them.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use super::process::{Server, PATIENCE};

/// Sends raw bytes on a fresh connection and returns the status code of the answer, or 0 if
/// the server closed (or reset) the connection without one. No answer at all is a failure.
pub async fn raw(server: &Server, request: &[u8]) -> u16 {
    let addr = server.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before it has read everything (a body over the limit).
    let _ = stream.write_all(request).await;
    let mut buf = vec![0u8; 1024];
    let n = match timeout(PATIENCE, stream.read(&mut buf)).await {
        Ok(read) => read.unwrap_or(0),
        Err(_) => panic!("no answer and no close within {PATIENCE:?}"),
    };
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// A `POST` with these headers and body, its Content-Length true, `Connection: close`.
pub fn request(path: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Vec<u8> {
    request_declaring(body.len(), path, headers, body)
}

/// Like [`request`], with `Content-Length: <declared>` whatever the body's length.
pub fn request_declaring(
    declared: usize,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Vec<u8> {
    let mut out = format!(
        "POST {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Length: {declared}\r\n"
    )
    .into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}
