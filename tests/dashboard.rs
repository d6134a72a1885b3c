//! `pixelx serve` against real sweeps: a headless Chromium (Debian's, installed by
//! scripts/setup-chromium.sh) renders the dashboard and must see a run that finishes during the
//! test appear without a reload; every route escapes hostile names and refuses traversal.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pixelx::registry::{Registry, RunFilter};
use pixelx::report::escape;
use pixelx::run_dir::RunDir;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------------------------
// Real processes: a sweep, the server, the browser. Each is killed when its guard drops, so a
// failing assertion does not leave them running.

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sweep_file(dir: &Path, name: &str, description: &str, grid: &str) -> PathBuf {
    let file = dir.join("sweep.toml");
    let text = format!(
        "[experiment]\nname = {}\ndescription = {}\ndataset = \"mnist\"\n\n[defaults]\nepochs = 2\n\
         batch_size = 32\nhidden_fmaps = 8\nout_hidden_fmaps = 8\nhidden_layers = 1\ncausal_ksize = 5\n\
         hidden_ksize = 3\nepoch_samples = 2\ntrain_subset = 512\ntest_subset = 128\n\
         lr_schedule = \"cosine\"\n\n[grid]\n{grid}\n\n[scheduler]\ndevices = [\"cpu\", \"cpu\"]\n",
        toml::Value::String(name.into()),
        toml::Value::String(description.into()),
    );
    std::fs::write(&file, text).unwrap();
    file
}

fn run_sweep(dir: &Path, file: &Path, extra: &[&str]) {
    let out = common::pixelx()
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .args(["-q", "run"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `pixelx serve --port 0` on `dir/runs`; returns the process and its `127.0.0.1:PORT`.
fn serve(dir: &Path) -> (Killed, String) {
    let mut child = common::pixelx()
        .arg("--runs-dir")
        .arg(dir.join("runs"))
        .args(["serve", "--port", "0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .trim()
        .strip_prefix("pixelx dashboard on http://")
        .and_then(|a| a.strip_suffix('/'))
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    (Killed(child), addr)
}

fn registry(dir: &Path) -> Registry {
    Registry::open_view(&dir.join("runs/registry.sqlite")).unwrap()
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client: the request goes out exactly as written (no `..` folding), which
// is what a traversal test needs.

struct Response {
    status: u16,
    headers: String,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }
}

fn get_with_host(addr: &str, path: &str, host: &str) -> Response {
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

fn get(addr: &str, path: &str) -> Response {
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

// ---------------------------------------------------------------------------------------------
// Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
// commands on fd 3, replies and events on fd 4, NUL-separated JSON), so no WebSocket client
// or browser-driver crate is needed.

struct Browser {
    process: Killed,
    commands: std::fs::File,
    messages: mpsc::Receiver<Value>,
    events: Vec<Value>,
    next_id: u64,
    session: String,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, owned from here on.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2");
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    fn launch() -> Self {
        let setup = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/setup-chromium.sh"))
            .output()
            .unwrap();
        assert!(
            setup.status.success(),
            "scripts/setup-chromium.sh: {}",
            String::from_utf8_lossy(&setup.stderr)
        );
        let profile = tempfile::tempdir().unwrap();
        let (to_chrome_r, to_chrome_w) = pipe();
        let (from_chrome_r, from_chrome_w) = pipe();
        let (cr, cw) = (to_chrome_r.as_raw_fd(), from_chrome_w.as_raw_fd());
        let mut cmd = Command::new("chromium");
        cmd.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            "--window-size=1400,4000",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("about:blank")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
        // SAFETY: only async-signal-safe calls between fork and exec. The pipe ends are first
        // moved above 10 so that placing them on 3 and 4 cannot overwrite one another; dup2
        // clears close-on-exec on the copies, so exactly fds 3 and 4 reach Chromium.
        unsafe {
            cmd.pre_exec(move || {
                let r = libc::fcntl(cr, libc::F_DUPFD_CLOEXEC, 10);
                let w = libc::fcntl(cw, libc::F_DUPFD_CLOEXEC, 10);
                if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let process = Killed(
            cmd.spawn()
                .expect("chromium (scripts/setup-chromium.sh installs it)"),
        );
        drop((to_chrome_r, from_chrome_w));
        let (tx, rx) = mpsc::channel();
        let mut reader = BufReader::new(std::fs::File::from(from_chrome_r));
        std::thread::spawn(move || loop {
            let mut buf = Vec::new();
            match reader.read_until(0, &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    buf.pop();
                    if let Ok(v) = serde_json::from_slice::<Value>(&buf) {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let mut b = Browser {
            process,
            commands: std::fs::File::from(to_chrome_w),
            messages: rx,
            events: Vec::new(),
            next_id: 0,
            session: String::new(),
            _profile: profile,
        };
        let target = b.call("Target.createTarget", json!({"url": "about:blank"}), false);
        let target_id = target["targetId"].as_str().unwrap().to_owned();
        let attached = b.call(
            "Target.attachToTarget",
            json!({"targetId": target_id, "flatten": true}),
            false,
        );
        b.session = attached["sessionId"].as_str().unwrap().to_owned();
        b.call("Network.enable", json!({}), true);
        b.call("Page.enable", json!({}), true);
        b
    }

    /// Sends a command (to the page's session if `in_page`) and waits for its reply.
    fn call(&mut self, method: &str, params: Value, in_page: bool) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if in_page {
            msg["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&msg).unwrap();
        bytes.push(0);
        self.commands.write_all(&bytes).unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let v = self
                .messages
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no reply to {method}"));
            if v["id"].as_u64() == Some(id) {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
            self.events.push(v);
        }
    }

    /// Evaluates `expr` in the page (awaiting promises) and returns its JSON value.
    fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            true,
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Navigates and waits until the page has loaded and its live stream is open.
    fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}), true);
        self.wait_for(
            "document.readyState === 'complete' && (document.getElementById('live-state') || {}).textContent === '● live'",
            Duration::from_secs(20),
        );
    }

    /// Polls `cond` in the page until it is true.
    fn wait_for(&mut self, cond: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.eval(&format!("Boolean({cond})")) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {cond}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// HTTP statuses of the responses the page received whose URL contains `part`.
    fn statuses(&mut self, part: &str) -> Vec<(String, u64)> {
        while let Ok(v) = self.messages.try_recv() {
            self.events.push(v);
        }
        self.events
            .iter()
            .filter(|e| e["method"] == "Network.responseReceived")
            .map(|e| &e["params"]["response"])
            .filter(|r| r["url"].as_str().is_some_and(|u| u.contains(part)))
            .map(|r| {
                (
                    r["url"].as_str().unwrap_or("").to_owned(),
                    r["status"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    }
}

impl Drop for Browser {
    /// Closes Chromium through the protocol so it ends its helper processes itself; the
    /// process guard kills whatever is left after a few seconds.
    fn drop(&mut self) {
        let _ = self
            .commands
            .write_all(b"{\"id\":999999,\"method\":\"Browser.close\"}\0");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.process.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

const ROWS: &str =
    "Array.from(document.querySelectorAll('tr.run-row'), r => [r.dataset.run, r.dataset.status])";

#[test]
fn in_a_real_browser_the_dashboard_shows_runs_charts_and_samples_and_a_finishing_run_appears_live() {
    let dir = tempfile::tempdir().unwrap();
    let file = sweep_file(
        dir.path(),
        "live",
        "two runs, then a third",
        "learning_rate = [2e-3, 5e-3]",
    );
    run_sweep(dir.path(), &file, &[]);
    let first: Vec<String> = registry(dir.path())
        .summaries(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(first.len(), 2);

    let (_server, addr) = serve(dir.path());
    let mut browser = Browser::launch();
    browser.open(&format!("http://{addr}/"));

    // The rendered DOM: both runs, the comparison charts, the sample grids loaded.
    let rows = browser.eval(ROWS);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    for r in rows {
        assert!(first.contains(&r[0].as_str().unwrap().to_owned()), "{r}");
        assert_eq!(r[1], "completed");
    }
    let charts = browser.eval(
        "({epochs: document.querySelectorAll('figure.epochs svg polyline').length,
           steps: document.querySelectorAll('figure.steps svg polyline').length,
           params: document.querySelectorAll('figure.param svg').length,
           parallel: document.querySelectorAll('figure.parallel svg').length,
           legend: document.querySelectorAll('ol.legend li').length})",
    );
    assert!(charts["epochs"].as_u64().unwrap() >= 2, "{charts}");
    assert!(charts["steps"].as_u64().unwrap() >= 4, "{charts}");
    assert_eq!(charts["params"], 1, "{charts}");
    assert_eq!(charts["parallel"], 1, "{charts}");
    assert_eq!(charts["legend"], 2, "{charts}");
    browser.wait_for(
        "document.images.length >= 4 && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
        Duration::from_secs(10),
    );
    let images = browser.statuses("/img/");
    assert!(images.len() >= 4, "{images:?}");
    assert!(images.iter().all(|(_, s)| *s == 200), "{images:?}");

    // A third run trains and finishes while the page stays open: it must appear, completed,
    // in the same document (the marker set now would not survive a reload).
    browser.eval("window.__marker = 'same page'; true");
    run_sweep(
        dir.path(),
        &file,
        &["--set", "grid.learning_rate=[2e-3, 5e-3, 1e-2]"],
    );
    let all: Vec<String> = registry(dir.path())
        .summaries(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    let new = all.iter().find(|id| !first.contains(id)).unwrap().clone();
    browser.wait_for(
        &format!("{ROWS}.some(([id, s]) => id === '{new}' && s === 'completed')"),
        Duration::from_secs(30),
    );
    assert_eq!(
        browser.eval("window.__marker"),
        "same page",
        "updated without a reload"
    );
    assert_eq!(
        browser.eval("performance.getEntriesByType('navigation').length"),
        1
    );
    assert!(
        browser
            .eval("Number(document.body.dataset.updates)")
            .as_u64()
            .unwrap()
            >= 1
    );
    assert!(
        browser
            .eval("document.querySelectorAll('figure.epochs svg polyline').length")
            .as_u64()
            .unwrap()
            >= 3
    );

    // The new run's own page: config, history, curves, samples, checkpoint paths.
    browser.open(&format!("http://{addr}/runs/{new}"));
    let page = browser.eval(
        "({title: document.querySelector('main h1').textContent,
           config: Array.from(document.querySelectorAll('table.config tr'), r => r.textContent),
           events: Array.from(document.querySelectorAll('table.events tbody tr'), r => r.children[1].textContent),
           charts: document.querySelectorAll('figure.chart svg').length,
           text: document.body.textContent})",
    );
    assert_eq!(page["title"], format!("run {new}"));
    assert!(
        page["config"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == "learning_rate0.01"),
        "{page}"
    );
    let events: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str())
        .collect();
    assert_eq!(events, ["queued", "running", "completed"]);
    assert_eq!(page["charts"], 2);
    assert!(page["text"]
        .as_str()
        .unwrap()
        .contains("checkpoints/epoch-0002.safetensors"));
    browser.wait_for(
        "document.images.length == 2 && Array.from(document.images).every(i => i.complete && i.naturalWidth > 0)",
        Duration::from_secs(10),
    );
    let mine = browser.statuses(&format!("/img/{new}/"));
    assert!(mine.len() >= 2 && mine.iter().all(|(_, s)| *s == 200), "{mine:?}");
}

// ---------------------------------------------------------------------------------------------
// Escaping and traversal, over HTTP, on a real sweep with a hostile experiment name.

const HOSTILE_NAME: &str = "<script>alert(1)</script> ../../x \"q\" 'q'";
const HOSTILE_DESCRIPTION: &str = "<img src=x onerror=alert(2)> & ../../etc/passwd";

fn hostile_sweep(dir: &Path) -> Vec<String> {
    let file = sweep_file(
        dir,
        HOSTILE_NAME,
        HOSTILE_DESCRIPTION,
        "learning_rate = [2e-3, 5e-3]",
    );
    run_sweep(dir, &file, &[]);
    registry(dir)
        .summaries(&RunFilter::default())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect()
}

fn assert_escaped(what: &str, page: &str) {
    assert!(!page.contains(HOSTILE_NAME), "{what}: raw experiment name");
    assert!(!page.contains("<img src=x"), "{what}: raw description");
    assert!(!page.contains("<script>"), "{what}: a script element");
    assert!(!page.contains("alert(1)</script>"), "{what}: the hostile script");
}

#[test]
fn hostile_names_are_escaped_and_traversal_or_unknown_ids_get_404_or_400_on_every_route() {
    let dir = tempfile::tempdir().unwrap();
    let ids = hostile_sweep(dir.path());
    let (_server, addr) = serve(dir.path());
    let id = &ids[0];
    let encoded = pixelx::report::html::url_segment(HOSTILE_NAME);

    // Every page shows the hostile strings escaped, never raw.
    for path in [
        "/".to_owned(),
        format!("/experiments/{encoded}"),
        format!("/runs/{id}"),
    ] {
        let r = get(&addr, &path);
        assert_eq!(r.status, 200, "{path}");
        let page = r.text();
        assert_escaped(&path, &page);
        assert!(
            page.contains(&escape(HOSTILE_NAME)),
            "{path} shows the name, escaped"
        );
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline'; script"),
            "{csp}"
        );
        assert_eq!(r.header("x-content-type-options").as_deref(), Some("nosniff"));
    }
    assert!(get(&addr, "/").text().contains(&escape(HOSTILE_DESCRIPTION)));

    // The one file a run page links to is served, as a PNG.
    let img = get(&addr, &format!("/img/{id}/2"));
    assert_eq!(img.status, 200);
    assert_eq!(img.header("content-type").as_deref(), Some("image/png"));
    assert_eq!(&img.body[..8], b"\x89PNG\r\n\x1a\n");

    // A file on disk that the registry does not name is not served, though its path is valid.
    let unrecorded = RunDir::new(&dir.path().join("runs"), id).epoch_samples(7);
    std::fs::copy(
        RunDir::new(&dir.path().join("runs"), id).epoch_samples(2),
        &unrecorded,
    )
    .unwrap();
    assert_eq!(get(&addr, &format!("/img/{id}/7")).status, 404);

    let attempts = [
        ("/runs/../../etc/passwd", 404),
        ("/runs/..%2f..%2fetc%2fpasswd", 400),
        ("/runs/%2e%2e/%2e%2e/etc/passwd", 404),
        ("/runs/%2e%2e%2f%2e%2e%2fetc%2fpasswd", 400),
        ("/runs/%2E%2E", 400),
        ("/runs/..", 400),
        ("/runs/ffffffffffff", 404),
        ("/runs/%3Cscript%3E", 400),
        ("/experiments/..%2f..%2fetc%2fpasswd", 404),
        ("/experiments/%3Cscript%3Ealert(1)%3C%2Fscript%3E", 404),
        ("/experiments/no-such-experiment", 404),
        ("/img/ffffffffffff/1", 404),
        ("/img/..%2f..%2fetc/1", 400),
        ("/img/%2e%2e/1", 400),
        ("/img/ID/../../x", 404),
        ("/img/ID/..%2f..%2fx", 400),
        ("/img/ID/1%2f..%2f..%2fconfig.toml", 400),
        ("/img/ID/-1", 400),
        ("/img/ID/99", 404),
        ("/img/ID/2/../../../../etc/passwd", 404),
        ("/static/../../etc/passwd", 404),
        ("/static/live.js/..%2f..%2fCargo.toml", 404),
        ("/etc/passwd", 404),
        ("/registry.sqlite", 404),
        ("/runs/registry.sqlite", 400),
        ("//etc/passwd", 404),
    ];
    for (path, want) in attempts {
        let path = path.replace("ID", id);
        let r = get(&addr, &path);
        assert_eq!(r.status, want, "{path}");
        let body = r.text();
        assert!(
            !body.contains("root:") && !body.contains("SQLite format"),
            "{path} leaked a file"
        );
        assert_escaped(&path, &body);
    }

    // Another web site's page (DNS rebinding) cannot read a loopback dashboard.
    assert_eq!(get_with_host(&addr, "/", "evil.example:80").status, 400);
    assert_eq!(
        get_with_host(&addr, "/", &addr.replace("127.0.0.1", "localhost")).status,
        200
    );
}
