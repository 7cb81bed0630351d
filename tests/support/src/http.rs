//! A minimal blocking HTTP/1.0 client for the emulator's admin endpoints.
//!
//! Blocking on purpose: the helpers are called from sync code, from `Drop`, and
//! from any tokio runtime (a pooled async client tied to one test's runtime
//! breaks when used from another's).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{bail, Context};

/// Sends one request to `http://host:port/path` and returns (status, body).
pub fn request(method: &str, url: &str, body: Option<&str>) -> anyhow::Result<(u16, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("only http:// URLs are supported: {url}"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let mut stream =
        TcpStream::connect(authority).with_context(|| format!("connect {authority}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.0\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).context("read response")?;
    let text = String::from_utf8_lossy(&raw);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("malformed HTTP response from {url}");
    };
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("no status in response from {url}"))?;
    Ok((status, body.to_string()))
}

/// Like [`request`], but fails unless the status is 2xx, and parses JSON.
pub fn json(method: &str, url: &str, body: Option<&str>) -> anyhow::Result<serde_json::Value> {
    let (status, text) = request(method, url, body)?;
    if !(200..300).contains(&status) {
        bail!("{method} {url} answered {status}: {text}");
    }
    if text.trim().is_empty() {
        return Ok(serde_json::Value::Null);
    }
    serde_json::from_str(&text).with_context(|| format!("{method} {url}: not JSON: {text}"))
}
