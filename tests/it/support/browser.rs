//! Headless Chromium driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`:
//! commands on fd 3, replies and events on fd 4, NUL-separated JSON), so no WebSocket client or
//! browser-driver crate is needed. Processes are killed when their guard drops, so a failing
//! assertion does not leave them running.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Killed;

pub struct Browser {
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
    pub fn launch() -> Self {
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
    pub fn call(&mut self, method: &str, params: Value, in_page: bool) -> Value {
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
    pub fn eval(&mut self, expr: &str) -> Value {
        let r = self.call(
            "Runtime.evaluate",
            json!({"expression": expr, "returnByValue": true, "awaitPromise": true}),
            true,
        );
        assert!(r.get("exceptionDetails").is_none(), "{expr}: {r}");
        r["result"]["value"].clone()
    }

    /// Navigates and waits until the page has loaded and its live stream is open.
    pub fn open(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url}), true);
        self.wait_for(
            "document.readyState === 'complete' && (document.getElementById('live-state') || {}).textContent === '● live'",
            Duration::from_secs(20),
        );
    }

    /// Polls `cond` in the page until it is true.
    pub fn wait_for(&mut self, cond: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.eval(&format!("Boolean({cond})")) != json!(true) {
            assert!(Instant::now() < deadline, "timed out waiting for {cond}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// HTTP statuses of the responses the page received whose URL contains `part`.
    pub fn statuses(&mut self, part: &str) -> Vec<(String, u64)> {
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
