//! `visits-api healthcheck`: the container's liveness check (the distroless image has no curl).
//! Succeeds when the local server answers HTTP at all, whatever the status: a draining task or
//! one whose database is down is alive, and ECS must not replace it mid scale-in. Readiness is
//! the load balancer's `/health` check.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

/// Asks `GET /health` on `PORT` (default 8080) at `BIND_ADDR`, or loopback when that is the
/// wildcard address; true when an HTTP status line comes back within `timeout`.
pub fn alive(timeout: Duration) -> bool {
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let ip = std::env::var("BIND_ADDR")
        .ok()
        .and_then(|a| a.parse::<IpAddr>().ok())
        .filter(|ip| !ip.is_unspecified())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]));
    probe(SocketAddr::new(ip, port), timeout)
}

fn probe(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(timeout));
    let _ = stream.set_write_timeout(Some(timeout));
    if stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_listening_is_not_alive() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        assert!(!probe(port, Duration::from_secs(1)));
    }
}
