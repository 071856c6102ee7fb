//! A minimal blocking HTTP/1.1 client on `std::net::TcpStream`: exactly what the tests need
//! (one request per connection, chunked or sized bodies, streaming reads), with nothing hidden —
//! no redirects followed, no retries, no pooling.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// Read timeout of plain requests: a hung server fails the test instead of hanging it.
const READ_TIMEOUT: Duration = Duration::from_secs(30);

/// A complete response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase, in order.
    pub headers: Vec<(String, String)>,
    /// The (de-chunked) body.
    pub body: Vec<u8>,
}

impl Response {
    /// A header's value (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (`Value::Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// `http://host:port/path` → (`host:port`, `/path`).
fn split_url(url: &str) -> (&str, &str) {
    let rest = url.strip_prefix("http://").unwrap_or_else(|| panic!("only http:// URLs: {url}"));
    rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]))
}

/// A response whose body is still on the wire.
pub struct Streaming {
    /// Status code.
    pub status: u16,
    /// Headers, names lowercase.
    pub headers: Vec<(String, String)>,
    /// The body, de-chunked as it is read.
    pub body: Body,
    /// The connection (a clone: `shutdown` it to drop the connection mid-body).
    pub conn: TcpStream,
}

impl Streaming {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.headers, name)
    }
}

/// Send a request and read the status line and headers; the body is left to stream.
///
/// # Errors
/// Connection or protocol errors.
pub fn open(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> io::Result<Streaming> {
    let (host, path) = split_url(url);
    let mut conn = TcpStream::connect(host)?;
    let mut head = format!("{method} {path} HTTP/1.1\r\n");
    // A `Host` in `headers` replaces the URL's (one Host only: the hive answers 400 to two).
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {host}\r\n"));
    }
    head.push_str("Connection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        head.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", b.len()));
    }
    head.push_str("\r\n");
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.unwrap_or_default())?;
    // A server that accepts and never answers fails the request instead of hanging it; the
    // body then waits as long as its reader says.
    conn.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut reader = BufReader::with_capacity(256 << 10, conn.try_clone()?);
    let status_line = read_line(&mut reader)?;
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).ok_or_else(|| bad(&status_line))?;
    let mut headers = Vec::new();
    loop {
        let line = read_line(&mut reader)?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once(':').ok_or_else(|| bad(&line))?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
    }
    let mode = if method == "HEAD" || status == 204 || status == 304 {
        Mode::Length(0)
    } else if header(&headers, "transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        Mode::Chunked { left: 0, started: false, done: false }
    } else if let Some(n) = header(&headers, "content-length").and_then(|v| v.parse().ok()) {
        Mode::Length(n)
    } else {
        Mode::UntilEof
    };
    conn.set_read_timeout(None)?;
    Ok(Streaming { status, headers, body: Body { reader, mode }, conn })
}

/// Send a request and read the whole response.
///
/// # Errors
/// Connection or protocol errors, or a body cut short.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> io::Result<Response> {
    let mut s = open(method, url, headers, body)?;
    s.conn.set_read_timeout(Some(READ_TIMEOUT))?;
    let mut body = Vec::new();
    s.body.read_to_end(&mut body)?;
    Ok(Response { status: s.status, headers: s.headers, body })
}

/// `GET url`, panicking on connection errors.
pub fn get(url: &str) -> Response {
    request("GET", url, &[], None).unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// `HEAD url`, panicking on connection errors.
pub fn head(url: &str) -> Response {
    request("HEAD", url, &[], None).unwrap_or_else(|e| panic!("HEAD {url}: {e}"))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("bad HTTP line: {what:?}"))
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

enum Mode {
    Length(u64),
    Chunked { left: u64, started: bool, done: bool },
    UntilEof,
}

/// A response body; `read` returns `UnexpectedEof` when a sized body ends early.
pub struct Body {
    reader: BufReader<TcpStream>,
    mode: Mode,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.mode {
            Mode::UntilEof => self.reader.read(buf),
            Mode::Length(0) => Ok(0),
            Mode::Length(left) => {
                let cap = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..cap])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("body short by {left} bytes")));
                }
                *left -= n as u64;
                Ok(n)
            }
            Mode::Chunked { done: true, .. } => Ok(0),
            Mode::Chunked { left, started, done } => {
                if *left == 0 {
                    if std::mem::replace(started, true) {
                        read_line(&mut self.reader)?; // CRLF after the previous chunk
                    }
                    let line = read_line(&mut self.reader)?;
                    let size = line.split(';').next().unwrap_or_default().trim();
                    *left = u64::from_str_radix(size, 16).map_err(|_| bad(&line))?;
                    if *left == 0 {
                        *done = true;
                        return Ok(0);
                    }
                }
                let cap = buf.len().min(usize::try_from(*left).unwrap_or(usize::MAX));
                let n = self.reader.read(&mut buf[..cap])?;
                if n == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                *left -= n as u64;
                Ok(n)
            }
        }
    }
}
