//! Plain HTTP/1.1 requests to the loader's server, for tests (no client library: the tests
//! also look at what the server does with odd requests).

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    time::Duration,
};

/// One request with `Connection: close`; the status and body, or an error when no answer
/// came within `limit`. Small bodies only: the server sends Content-Length, not chunks.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    limit: Duration,
) -> Result<(u16, String), String> {
    let mut s = TcpStream::connect_timeout(&addr, limit).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(limit)).map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).map_err(|e| e.to_string())?;
    let (head, body) = buf
        .split_once("\r\n\r\n")
        .ok_or(format!("no head: {buf:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or(format!("no status: {head:?}"))?;
    Ok((status, body.to_owned()))
}

/// [`request`] with GET.
pub fn get(addr: SocketAddr, path: &str, limit: Duration) -> Result<(u16, String), String> {
    request(addr, "GET", path, limit)
}
