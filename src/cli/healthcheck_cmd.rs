//! `voc healthcheck`: asks a running `voc serve` whether it can classify (`GET /readyz`: every
//! inference thread runs and Postgres answers), for a container's health check in an image that
//! has no curl. Prints the answer's body; exits non-zero unless the answer is 200.

use anyhow::{bail, Context};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct HealthcheckArgs {
    /// The address `voc serve` listens on (its `--bind`); 0.0.0.0 and [::] are asked on loopback.
    #[arg(long, env = "VOC_BIND", default_value = "127.0.0.1:8080")]
    pub bind: String,
    /// The route to ask.
    #[arg(long, default_value = "/readyz")]
    pub path: String,
    /// Give up after this long (connecting, then reading the answer).
    #[arg(long, default_value_t = 3000)]
    pub timeout_ms: u64,
}

pub fn run(args: HealthcheckArgs) -> anyhow::Result<()> {
    let addr = target(&args.bind)?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let (status, body) = get(addr, &args.path, timeout)
        .with_context(|| format!("no answer to GET {} from {addr}", args.path))?;
    println!("{body}");
    if status != 200 {
        bail!("GET {} on {addr} answered {status}", args.path);
    }
    Ok(())
}

/// Where to connect for a service bound to `bind`: an unspecified address means loopback.
fn target(bind: &str) -> anyhow::Result<SocketAddr> {
    let addr = bind
        .to_socket_addrs()
        .with_context(|| format!("{bind:?} is not a host:port address"))?
        .next()
        .with_context(|| format!("{bind:?} resolves to no address"))?;
    if !addr.ip().is_unspecified() {
        return Ok(addr);
    }
    let loopback = match addr.ip() {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
    };
    Ok(SocketAddr::new(loopback, addr.port()))
}

/// One HTTP/1.1 GET with `Connection: close`, read to the end.
fn get(addr: SocketAddr, path: &str, timeout: Duration) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// The status code and body of a complete HTTP/1.1 answer.
fn parse_response(raw: &[u8]) -> anyhow::Result<(u16, String)> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("the answer ended before its headers did")?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no HTTP status line in {head:?}"))?;
    Ok((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-connection server on loopback that reads the request and answers `answer`;
    /// gives back its address and the request it read.
    fn serve_once(answer: &'static str) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let handle = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut request = Vec::new();
            let mut buf = [0u8; 512];
            while !request.ends_with(b"\r\n\r\n") {
                let n = conn.read(&mut buf).unwrap();
                assert!(n > 0, "the client closed before sending a whole request");
                request.extend_from_slice(&buf[..n]);
            }
            conn.write_all(answer.as_bytes()).unwrap();
            String::from_utf8(request).unwrap()
        });
        (addr, handle)
    }

    #[test]
    fn a_ready_service_passes_and_its_body_is_read() {
        let (addr, server) =
            serve_once("HTTP/1.1 200 OK\r\ncontent-length: 18\r\n\r\n{\"status\":\"ready\"}");
        let (status, body) = get(addr, "/readyz", Duration::from_secs(5)).unwrap();
        assert_eq!(status, 200);
        assert_eq!(body, "{\"status\":\"ready\"}");
        let request = server.join().unwrap();
        assert!(request.starts_with("GET /readyz HTTP/1.1\r\n"), "{request}");
    }

    #[test]
    fn an_unavailable_service_fails_the_check() {
        let (addr, server) = serve_once("HTTP/1.1 503 Service Unavailable\r\n\r\n{}");
        let args = HealthcheckArgs {
            bind: addr.to_string(),
            path: "/readyz".into(),
            timeout_ms: 5000,
        };
        let err = run(args).unwrap_err().to_string();
        assert!(err.contains("answered 503"), "{err}");
        server.join().unwrap();
    }

    #[test]
    fn nothing_listening_fails_the_check() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap(); // the listener is dropped: the port is closed
        let args = HealthcheckArgs {
            bind: addr.to_string(),
            path: "/readyz".into(),
            timeout_ms: 5000,
        };
        assert!(run(args).is_err());
    }

    #[test]
    fn an_unspecified_bind_address_is_asked_on_loopback() {
        assert_eq!(
            target("0.0.0.0:8080").unwrap(),
            "127.0.0.1:8080".parse().unwrap()
        );
        assert_eq!(target("[::]:9").unwrap(), "[::1]:9".parse().unwrap());
        assert_eq!(
            target("10.1.2.3:80").unwrap(),
            "10.1.2.3:80".parse().unwrap()
        );
        assert!(target("no-port").is_err());
    }

    #[test]
    fn a_truncated_answer_is_an_error() {
        assert!(parse_response(b"HTTP/1.1 200 OK\r\ncontent-le").is_err());
        assert!(parse_response(b"garbage\r\n\r\n").is_err());
    }
}
