//! A blocking client for the parts of MLflow's REST API that `pixelx sync mlflow` uses, with
//! MLflow's own conventions for credentials, TLS and timeouts, and errors in words.
//!
//! Conventions honoured (as MLflow's Python client reads them): `MLFLOW_TRACKING_TOKEN` (bearer),
//! `MLFLOW_TRACKING_USERNAME` / `MLFLOW_TRACKING_PASSWORD` (basic), `MLFLOW_TRACKING_INSECURE_TLS`,
//! `MLFLOW_TRACKING_SERVER_CERT_PATH` (a CA bundle) and `MLFLOW_HTTP_REQUEST_TIMEOUT` (seconds,
//! default 120). Credentials live only in the request headers: never in an error, the registry or
//! anything printed.

use std::time::Duration;

use base64::Engine;
use serde_json::Value;

/// Seconds MLflow's own client waits for an answer when `MLFLOW_HTTP_REQUEST_TIMEOUT` is unset.
const DEFAULT_TIMEOUT_S: u64 = 120;
/// A server that does not accept a connection in this long is taken as down.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a request failed. The messages name the server (without credentials) and the call.
#[derive(Debug, thiserror::Error)]
pub enum MlflowError {
    #[error("cannot reach the MLflow server at {server} ({cause}); is it running? Nothing is lost: the next sync sends what this one did not")]
    Unreachable { server: String, cause: String },
    #[error("the MLflow server at {server} did not answer {call} within {seconds} s (MLFLOW_HTTP_REQUEST_TIMEOUT sets the limit); nothing is lost: the next sync sends what this one did not")]
    Timeout {
        server: String,
        call: String,
        seconds: u64,
    },
    #[error("the MLflow server at {server} refused {call}: HTTP {status}{}{}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default(), if message.is_empty() { String::new() } else { format!(": {message}") })]
    Refused {
        server: String,
        call: String,
        status: u16,
        /// MLflow's `error_code`, e.g. `INVALID_PARAMETER_VALUE`.
        code: Option<String>,
        message: String,
    },
    #[error(
        "the MLflow server at {server} answered {call} with something that is not MLflow's JSON: {cause}"
    )]
    BadAnswer {
        server: String,
        call: String,
        cause: String,
    },
    #[error("{0}")]
    Setup(String),
}

impl MlflowError {
    /// MLflow's answer for a name or id it does not know.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Refused { status: 404, .. })
            || matches!(self, Self::Refused { code: Some(c), .. } if c == "RESOURCE_DOES_NOT_EXIST")
    }
}

pub struct Client {
    agent: ureq::Agent,
    /// `scheme://host:port/prefix`, without a trailing slash or credentials.
    base: String,
    auth: Option<String>,
    timeout_s: u64,
}

/// A tracking URI split into what may be shown and stored, and the credentials it carried
/// (`http://user:pass@host`).
pub fn split_uri(uri: &str) -> Result<(String, Option<(String, String)>), MlflowError> {
    let uri = uri.trim().trim_end_matches('/');
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(MlflowError::Setup(format!(
            "`{}` is not an http(s) URI of an MLflow tracking server (give --uri http://HOST:PORT or set MLFLOW_TRACKING_URI)",
            redact(uri)
        )));
    };
    if scheme != "http" && scheme != "https" {
        return Err(MlflowError::Setup(format!(
            "pixelx syncs to an MLflow tracking server over http or https; `{}` is a {scheme} URI",
            redact(uri)
        )));
    }
    // Credentials end at the last `@` before any query or fragment, even when a password holds
    // an unescaped `/`: splitting at the first `/` first would take such a password for part of
    // the path, and then store and print it as the server's name.
    let before_query = rest.find(['?', '#']).map_or(rest, |end| &rest[..end]);
    let (userinfo, rest) = match before_query.rfind('@') {
        Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
        None => (None, rest),
    };
    let (host, path) = rest.split_once('/').map_or((rest, ""), |(a, p)| (a, p));
    if host.is_empty() {
        return Err(MlflowError::Setup(format!("`{}` names no host", redact(uri))));
    }
    // As in any URL, the user and password are percent-encoded (`p%40ss` for `p@ss`).
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let creds = userinfo.map(|u| match u.split_once(':') {
        Some((user, pass)) => (decode(user), decode(pass)),
        None => (decode(u), String::new()),
    });
    let shown = if path.is_empty() {
        format!("{scheme}://{host}")
    } else {
        format!("{scheme}://{host}/{path}")
    };
    Ok((shown, creds))
}

/// `uri` with any `user:password@` replaced, for messages about a URI that did not parse.
fn redact(uri: &str) -> String {
    match (uri.find("://"), uri.rfind('@')) {
        (Some(s), Some(at)) if at > s => format!("{}***{}", &uri[..s + 3], &uri[at..]),
        _ => uri.to_owned(),
    }
}

impl Client {
    /// A client for the server at `uri`, configured from MLflow's environment variables.
    pub fn new(uri: &str) -> Result<Self, MlflowError> {
        Self::configured(uri, &|name| std::env::var(name).ok())
    }

    /// [`Client::new`] with the variables read through `var` (tests give their own).
    fn configured(uri: &str, var: &dyn Fn(&str) -> Option<String>) -> Result<Self, MlflowError> {
        let env = |name: &str| var(name).filter(|v| !v.is_empty());
        let (base, uri_creds) = split_uri(uri)?;
        let auth = if let Some(token) = env("MLFLOW_TRACKING_TOKEN") {
            Some(format!("Bearer {token}"))
        } else {
            let user_pass = match (env("MLFLOW_TRACKING_USERNAME"), env("MLFLOW_TRACKING_PASSWORD")) {
                (Some(u), p) => Some((u, p.unwrap_or_default())),
                (None, _) => uri_creds,
            };
            user_pass.map(|(u, p)| {
                let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
                format!("Basic {encoded}")
            })
        };
        let timeout_s = match env("MLFLOW_HTTP_REQUEST_TIMEOUT") {
            None => DEFAULT_TIMEOUT_S,
            Some(v) => v.trim().parse::<u64>().ok().filter(|&s| s > 0).ok_or_else(|| {
                MlflowError::Setup(format!(
                    "MLFLOW_HTTP_REQUEST_TIMEOUT = `{v}` is not a whole number of seconds above 0"
                ))
            })?,
        };
        let mut tls = ureq::tls::TlsConfig::builder();
        if env("MLFLOW_TRACKING_INSECURE_TLS").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
            tls = tls.disable_verification(true);
        }
        if let Some(path) = env("MLFLOW_TRACKING_SERVER_CERT_PATH") {
            let pem = std::fs::read(&path).map_err(|e| {
                MlflowError::Setup(format!(
                    "cannot read MLFLOW_TRACKING_SERVER_CERT_PATH {path}: {e}"
                ))
            })?;
            let certs = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect::<Vec<_>>();
            if certs.is_empty() {
                return Err(MlflowError::Setup(format!(
                    "MLFLOW_TRACKING_SERVER_CERT_PATH {path} holds no PEM certificate"
                )));
            }
            tls = tls.root_certs(ureq::tls::RootCerts::new_with_certs(&certs));
        }
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(Duration::from_secs(timeout_s)))
            .tls_config(tls.build())
            .user_agent(concat!("pixelx/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Self {
            agent: config.into(),
            base,
            auth,
            timeout_s,
        })
    }

    /// The server as shown and as the registry remembers it: the URI without credentials.
    pub fn server(&self) -> &str {
        &self.base
    }

    /// `GET /api/2.0/mlflow/<call>?<query>`.
    pub fn get(&self, call: &str, query: &[(&str, &str)]) -> Result<Value, MlflowError> {
        let mut req = self.agent.get(format!("{}/api/2.0/mlflow/{call}", self.base));
        for (k, v) in query {
            req = req.query(*k, *v);
        }
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        self.answer(call, req.call())
    }

    /// `POST /api/2.0/mlflow/<call>` with a JSON body.
    pub fn post(&self, call: &str, body: &Value) -> Result<Value, MlflowError> {
        let mut req = self.agent.post(format!("{}/api/2.0/mlflow/{call}", self.base));
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        self.answer(call, req.send_json(body))
    }

    /// Uploads `bytes` to `path` under the server's proxied artifact store
    /// (`PUT /api/2.0/mlflow-artifacts/artifacts/<path>`).
    pub fn put_artifact(&self, path: &str, bytes: &[u8]) -> Result<(), MlflowError> {
        let encoded: Vec<String> = path.split('/').map(percent_encode).collect();
        let url = format!(
            "{}/api/2.0/mlflow-artifacts/artifacts/{}",
            self.base,
            encoded.join("/")
        );
        let mut req = self
            .agent
            .put(url)
            .header("Content-Type", "application/octet-stream");
        if let Some(auth) = &self.auth {
            req = req.header("Authorization", auth);
        }
        let call = format!("the upload of artifact {path}");
        self.answer(&call, req.send(bytes)).map(|_| ())
    }

    /// The JSON of a successful answer, or the error in words.
    fn answer(
        &self,
        call: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, MlflowError> {
        let mut response = result.map_err(|e| self.transport_error(call, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .read_to_string()
            .map_err(|e| self.transport_error(call, e))?;
        let json: Option<Value> = serde_json::from_str(&text).ok();
        if !(200..300).contains(&status) {
            let field = |k: &str| json.as_ref().and_then(|j| j[k].as_str()).map(str::to_owned);
            let message = field("message").unwrap_or_else(|| first_line(&text));
            return Err(MlflowError::Refused {
                server: self.base.clone(),
                call: call.to_owned(),
                status,
                code: field("error_code"),
                message,
            });
        }
        if text.trim().is_empty() {
            return Ok(Value::Object(Default::default()));
        }
        json.ok_or_else(|| MlflowError::BadAnswer {
            server: self.base.clone(),
            call: call.to_owned(),
            cause: first_line(&text),
        })
    }

    fn transport_error(&self, call: &str, e: ureq::Error) -> MlflowError {
        let server = self.base.clone();
        let cause = match e {
            ureq::Error::Timeout(_) => {
                return MlflowError::Timeout {
                    server,
                    call: call.to_owned(),
                    seconds: self.timeout_s,
                }
            }
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
                std::io::ErrorKind::ConnectionReset => "the connection was reset".to_owned(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe => {
                    format!("the connection closed during {call}")
                }
                std::io::ErrorKind::TimedOut => {
                    return MlflowError::Timeout {
                        server,
                        call: call.to_owned(),
                        seconds: self.timeout_s,
                    }
                }
                _ => io.to_string(),
            },
            ureq::Error::HostNotFound => "its host name does not resolve".to_owned(),
            ureq::Error::ConnectionFailed => "the connection failed".to_owned(),
            other => other.to_string(),
        };
        MlflowError::Unreachable { server, cause }
    }
}

/// The first line of a body, shortened: enough to recognise an HTML error page or a proxy's text.
fn first_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("(an empty answer)");
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_owned(),
    }
}

/// Every byte but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) is escaped.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// Percent-encodes one path segment (artifact names are plain, but a run folder may not be).
fn percent_encode(segment: &str) -> String {
    percent_encoding::utf8_percent_encode(segment, SEGMENT).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_a_uri_are_split_off_and_never_shown() {
        let (shown, creds) = split_uri("https://ann:s3cret@mlflow.lab:5000/prefix/").unwrap();
        assert_eq!(shown, "https://mlflow.lab:5000/prefix");
        assert_eq!(creds, Some(("ann".into(), "s3cret".into())));
        let err = split_uri("ftp://ann:s3cret@host").unwrap_err().to_string();
        assert!(!err.contains("s3cret") && err.contains("ftp"), "{err}");
        assert!(split_uri("localhost:5000").is_err());
        // A password with an unescaped `/` is still a password, never part of the shown URI.
        let (shown, creds) = split_uri("http://ann:pa/ss@host:5000/mlflow").unwrap();
        assert_eq!(shown, "http://host:5000/mlflow");
        assert_eq!(creds, Some(("ann".into(), "pa/ss".into())));
        // Percent-encoded credentials are decoded before they are sent.
        let (_, creds) = split_uri("http://ann%2Bb:p%40ss@host").unwrap();
        assert_eq!(creds, Some(("ann+b".into(), "p@ss".into())));
    }

    /// The Authorization header of one request `client` sends to a one-shot local server.
    fn authorization_sent(vars: &[(&str, &str)], userinfo: &str) -> Option<String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = std::thread::spawn(move || {
            use std::io::{Read, Write};
            let (mut s, _) = listener.accept().unwrap();
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap() == 1 {
                head.push(byte[0]);
            }
            s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")
                .unwrap();
            String::from_utf8(head).unwrap()
        });
        let vars: Vec<(String, String)> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let lookup = move |name: &str| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
        let client = Client::configured(&format!("http://{userinfo}127.0.0.1:{port}"), &lookup).unwrap();
        assert_eq!(client.server(), format!("http://127.0.0.1:{port}"));
        client.get("experiments/search", &[]).unwrap();
        let head = server.join().unwrap();
        head.lines()
            .find_map(|l| {
                l.strip_prefix("authorization: ")
                    .or_else(|| l.strip_prefix("Authorization: "))
            })
            .map(str::to_owned)
    }

    #[test]
    fn credentials_follow_mlflows_variables() {
        assert_eq!(
            authorization_sent(&[("MLFLOW_TRACKING_TOKEN", "tok")], "").as_deref(),
            Some("Bearer tok")
        );
        // ann:pw
        let basic = Some("Basic YW5uOnB3");
        let user_pass = [
            ("MLFLOW_TRACKING_USERNAME", "ann"),
            ("MLFLOW_TRACKING_PASSWORD", "pw"),
        ];
        assert_eq!(authorization_sent(&user_pass, "").as_deref(), basic);
        assert_eq!(authorization_sent(&[], "ann:pw@").as_deref(), basic);
        assert_eq!(authorization_sent(&[], ""), None);
    }

    #[test]
    fn a_bad_timeout_is_named() {
        let lookup = |name: &str| (name == "MLFLOW_HTTP_REQUEST_TIMEOUT").then(|| "soon".to_owned());
        let err = Client::configured("http://127.0.0.1:1", &lookup)
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("MLFLOW_HTTP_REQUEST_TIMEOUT") && err.contains("soon"),
            "{err}"
        );
    }

    #[test]
    fn path_segments_are_percent_encoded() {
        assert_eq!(percent_encode("epoch-0001.png"), "epoch-0001.png");
        assert_eq!(percent_encode("a b#"), "a%20b%23");
    }
}
