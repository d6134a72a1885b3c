//! What every request and response goes through: the Host check that keeps other web sites
//! from reading a loopback dashboard through DNS rebinding, and headers that forbid inline
//! scripts, framing and content sniffing.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Only the page's own script, no inline code; images from the server itself or embedded.
const CSP: &str = "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self' data:; \
                   style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// The Host values a loopback-bound server answers to: the address it is bound to (the one
/// `serve` prints, which may be any of 127.0.0.0/8), and the usual names of this machine;
/// `None` when bound to another address (the user chose to expose it, and names it as they like).
pub fn allowed_hosts(addr: SocketAddr) -> Option<Vec<String>> {
    if !addr.ip().is_loopback() {
        return None;
    }
    let port = addr.port();
    let mut hosts = vec![
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::1]:{port}"),
    ];
    // `SocketAddr`'s display brackets an IPv6 address, as a Host header does.
    let bound = addr.to_string();
    if !hosts.contains(&bound) {
        hosts.push(bound);
    }
    Some(hosts)
}

/// Refuses a request whose Host is not one of `hosts` (any, when `None`), and adds the security
/// headers to every response.
pub async fn check(State(hosts): State<Arc<Option<Vec<String>>>>, req: Request, next: Next) -> Response {
    if let Some(allowed) = hosts.as_ref() {
        let host = req
            .headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.to_ascii_lowercase());
        if !host.is_some_and(|h| allowed.contains(&h)) {
            return (StatusCode::BAD_REQUEST, "unexpected Host header\n").into_response();
        }
    }
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// A plain-text error response (nothing from the request is echoed back).
pub fn error(status: StatusCode, message: &'static str) -> Response {
    let mut res = Response::new(Body::from(format!("{message}\n")));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_loopback_server_answers_to_its_own_address_and_localhost() {
        let hosts = allowed_hosts("127.0.0.2:8080".parse().unwrap()).unwrap();
        assert!(hosts.contains(&"127.0.0.2:8080".to_owned()), "{hosts:?}");
        assert!(hosts.contains(&"localhost:8080".to_owned()), "{hosts:?}");
        assert!(!hosts.contains(&"127.0.0.3:8080".to_owned()), "{hosts:?}");
        let v6 = allowed_hosts("[::1]:9000".parse().unwrap()).unwrap();
        assert_eq!(v6.iter().filter(|h| *h == "[::1]:9000").count(), 1, "{v6:?}");
        assert_eq!(allowed_hosts("0.0.0.0:80".parse().unwrap()), None);
    }
}
