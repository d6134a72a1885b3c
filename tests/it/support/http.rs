//! A minimal HTTP/1.1 client: the request goes out exactly as written (no `..` folding), which
//! is what a traversal test needs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

pub struct Response {
    pub status: u16,
    pub headers: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

pub fn get_with_host(addr: &str, path: &str, host: &str) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let headers = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = headers
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status code");
    let mut body = raw[split + 4..].to_vec();
    if headers
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = dechunk(&body);
    }
    Response {
        status,
        headers,
        body,
    }
}

pub fn get(addr: &str, path: &str) -> Response {
    get_with_host(addr, path, addr)
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.extend_from_slice(&data[eol + 2..eol + 2 + size]);
        data = &data[eol + 4 + size..];
    }
    out
}

/// `GET /events` held open: the change tokens the server sends, one at a time.
pub struct Events {
    reader: std::io::BufReader<TcpStream>,
    /// How long [`Events::next`] waits (keep-alive comments do not count as events).
    wait: Duration,
    /// Decoded body bytes not yet split into events.
    pending: String,
}

impl Events {
    /// Opens the stream; `wait` bounds how long [`Events::next`] waits for one event.
    pub fn open(addr: &str, wait: Duration) -> Self {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(wait)).unwrap();
        write!(s, "GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut reader = std::io::BufReader::new(s);
        let mut status = String::new();
        std::io::BufRead::read_line(&mut reader, &mut status).unwrap();
        assert!(status.contains(" 200 "), "{status}");
        let mut chunked = false;
        loop {
            let mut line = String::new();
            std::io::BufRead::read_line(&mut reader, &mut line).unwrap();
            chunked |= line
                .to_ascii_lowercase()
                .starts_with("transfer-encoding: chunked");
            if line.trim().is_empty() {
                break;
            }
        }
        assert!(chunked, "an event stream is sent in chunks");
        Self {
            reader,
            wait,
            pending: String::new(),
        }
    }

    /// The next token, or `None` when none came within the wait given to [`Events::open`].
    pub fn next(&mut self) -> Option<String> {
        let deadline = std::time::Instant::now() + self.wait;
        loop {
            if std::time::Instant::now() > deadline {
                return None;
            }
            if let Some(end) = self.pending.find("\n\n") {
                let event: String = self.pending.drain(..end + 2).collect();
                // Keep-alive comments (`:`) carry no data.
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:")) {
                    return Some(data.trim().to_owned());
                }
                continue;
            }
            let mut size = String::new();
            if std::io::BufRead::read_line(&mut self.reader, &mut size).is_err() {
                return None;
            }
            let size = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; size + 2];
            self.reader.read_exact(&mut chunk).ok()?;
            self.pending += &String::from_utf8_lossy(&chunk[..size]);
        }
    }

    /// Reads tokens until one satisfies `want`; `None` when the stream goes quiet first.
    pub fn until(&mut self, want: impl Fn(&str) -> bool) -> Option<String> {
        loop {
            let token = self.next()?;
            if want(&token) {
                return Some(token);
            }
        }
    }
}
