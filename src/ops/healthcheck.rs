//! `latchkey healthcheck`: exit 0 when the server configured by `--bind`
//! answers `GET /healthz` with `200 ok`. For container health checks: a
//! minimal image has no curl.
//!
//! Written by hand on purpose: one plain HTTP/1.1 request to a local
//! listener, which a dozen lines of `std::net` do; an HTTP client crate
//! would bring a TLS stack and an async runtime into the binary for it.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// Each of connecting, sending and reading may take this long.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Where to reach a server listening on `bind`: the address itself, or
/// loopback for a wildcard address (`0.0.0.0:8080` in a container).
pub fn target(bind: &str) -> anyhow::Result<SocketAddr> {
    let addr = bind
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("--bind {bind}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("--bind {bind} names no address"))?;
    let ip = match addr.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(SocketAddr::new(ip, addr.port()))
}

/// Ask the server at `addr` for `/healthz`; `Ok` when it says `200 ok`.
pub fn check(addr: SocketAddr) -> anyhow::Result<()> {
    let mut stream =
        TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| anyhow::anyhow!("cannot connect to {addr}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    let request = format!(
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: latchkey-healthcheck\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    // The answer is a few hundred bytes; anything past 64 KiB is not ours.
    let mut answer = Vec::new();
    stream.take(64 * 1024).read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or("");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    if status.starts_with("HTTP/1.1 200") && body.trim() == "ok" {
        Ok(())
    } else {
        anyhow::bail!("{addr} answered `{status}`: {}", body.trim())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_binds_are_checked_on_loopback() {
        assert_eq!(target("0.0.0.0:8080").unwrap(), "127.0.0.1:8080".parse().unwrap());
        assert_eq!(target("[::]:8080").unwrap(), "[::1]:8080".parse().unwrap());
        assert_eq!(target("127.0.0.2:81").unwrap(), "127.0.0.2:81".parse().unwrap());
        assert!(target("no port").is_err());
    }

    #[test]
    fn nothing_listening_is_unhealthy() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert!(check(addr).is_err());
    }
}
