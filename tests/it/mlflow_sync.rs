//! `pixelx sync mlflow` against a real MLflow tracking server (the `mlflow` that
//! `scripts/setup-mlflow.sh` pins into `.venv`; `just test` installs it): a real tiny sweep with a
//! pruned and a failed run reads back through MLflow's Python client value for value as
//! `pixelx report --format json` and the registry have it, a second sync sends nothing, a sync
//! cut off by a server killed mid-sync is completed exactly by the next one, and a run resumed
//! since is updated. Everything about the MLflow integration that needs a server belongs here.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::{self, run_in, wait_for};
use serde_json::Value;

fn venv_bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".venv/bin")
        .join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Whether `GET path` on 127.0.0.1:`port` answers 200.
fn answers_ok(port: u16, path: &str) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

/// A real `mlflow server`: SQLite backend store and proxied artifacts in `store`.
struct Mlflow {
    child: Child,
    port: u16,
}

impl Mlflow {
    fn start(store: &Path, port: u16) -> Self {
        let mlflow = venv_bin("mlflow");
        assert!(
            mlflow.exists(),
            "{} is missing: run scripts/setup-mlflow.sh (`just test` does)",
            mlflow.display()
        );
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(store.join("server.log"))
            .unwrap();
        let child = Command::new(mlflow)
            .args([
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--workers",
                "1",
            ])
            .arg("--backend-store-uri")
            .arg(format!("sqlite:///{}", store.join("mlflow.db").display()))
            .arg("--artifacts-destination")
            .arg(store.join("artifacts"))
            .arg("--serve-artifacts")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own process group: `mlflow server` runs uvicorn and job runners as children,
            // which outlive it when only it is killed (and keep answering on the port).
            .process_group(0)
            .spawn()
            .unwrap();
        let mut server = Self { child, port };
        let up = wait_for(Duration::from_secs(300), || {
            answers_ok(port, "/health") || server.child.try_wait().unwrap().is_some()
        });
        let log = std::fs::read_to_string(store.join("server.log")).unwrap_or_default();
        assert!(
            up && server.child.try_wait().unwrap().is_none(),
            "mlflow server did not come up: {log}"
        );
        server
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for Mlflow {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.wait();
    }
}

/// SIGKILL to the process group led by `pid` (a server started with `process_group(0)`): the
/// whole server dies, its workers too.
fn kill_group(pid: u32) {
    if pid > 0 {
        // SAFETY: kill(2) on a process group this test started; no memory is shared.
        unsafe {
            libc::kill(-(pid as i32), libc::SIGKILL);
        }
    }
}

/// Where the proxy cuts a sync off: at the `nth` request whose request line contains `call`.
type Cut = Arc<Mutex<Option<(&'static str, usize)>>>;

/// Forwards HTTP requests to the MLflow server one by one, each on its own upstream connection
/// that closes after its answer, so it can count them. At the request `cut` names, it lets the
/// server apply it, then kills the server (SIGKILL) and drops the client's connection unanswered:
/// a server dying mid-sync, at the worst moment. `cut_after` is then the number of requests
/// forwarded so far.
struct Proxy {
    port: u16,
    cut: Cut,
    server_pid: Arc<AtomicU32>,
    served: Arc<AtomicUsize>,
    cut_after: Arc<AtomicUsize>,
}

impl Proxy {
    fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let proxy = Self {
            port,
            cut: Arc::new(Mutex::new(None)),
            server_pid: Arc::new(AtomicU32::new(0)),
            served: Arc::new(AtomicUsize::new(0)),
            cut_after: Arc::new(AtomicUsize::new(0)),
        };
        let shared = proxy.shared();
        std::thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let _ = forward(client, upstream, &shared);
                });
            }
        });
        proxy
    }

    fn shared(&self) -> Shared {
        Shared {
            cut: self.cut.clone(),
            server_pid: self.server_pid.clone(),
            served: self.served.clone(),
            cut_after: self.cut_after.clone(),
        }
    }

    fn uri(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

#[derive(Clone)]
struct Shared {
    cut: Cut,
    server_pid: Arc<AtomicU32>,
    served: Arc<AtomicUsize>,
    cut_after: Arc<AtomicUsize>,
}

fn forward(mut client: TcpStream, upstream: u16, shared: &Shared) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte)? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut length = 0;
    let mut lines: Vec<&str> = Vec::new();
    for line in text.split("\r\n").filter(|l| !l.is_empty()) {
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
        if !lower.starts_with("connection:") {
            lines.push(line);
        }
    }
    let mut body = vec![0u8; length];
    client.read_exact(&mut body)?;
    let number = shared.served.fetch_add(1, Ordering::SeqCst) + 1;
    let cut_here = {
        let mut cut = shared.cut.lock().unwrap();
        let hit = match cut.as_mut() {
            Some((call, nth)) if lines[0].contains(*call) => {
                *nth -= 1;
                *nth == 0
            }
            _ => false,
        };
        if hit {
            *cut = None;
        }
        hit
    };
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let head = format!("{}\r\nConnection: close\r\n\r\n", lines.join("\r\n"));
    up.write_all(head.as_bytes())?;
    up.write_all(&body)?;
    let mut answer = Vec::new();
    up.read_to_end(&mut answer)?;
    if cut_here {
        kill_group(shared.server_pid.load(Ordering::SeqCst));
        shared.cut_after.store(number, Ordering::SeqCst);
        return Ok(());
    }
    // The answer says `Connection: close`: the client opens a new connection for the next.
    client.write_all(&answer)
}

/// Reads everything the server has of the synced experiments through MLflow's Python client, and
/// downloads each run's artefacts under `downloads/<pixelx run id>/`.
const READ_BACK: &str = r#"
import json, math, sys
from mlflow.tracking import MlflowClient

uri, downloads = sys.argv[1], sys.argv[2]
client = MlflowClient(tracking_uri=uri)

def number(v):
    return v if math.isfinite(v) else repr(v)

out = []
for exp in client.search_experiments():
    if exp.name == "Default":
        continue
    for run in client.search_runs([exp.experiment_id], max_results=10000):
        info, data = run.info, run.data
        metrics = {}
        for key in data.metrics:
            history = client.get_metric_history(info.run_id, key)
            metrics[key] = sorted([m.step, number(m.value), m.timestamp] for m in history)
        files = []
        def walk(path):
            for f in client.list_artifacts(info.run_id, path):
                if f.is_dir:
                    walk(f.path)
                else:
                    files.append(f.path)
        walk(None)
        pixelx_id = data.tags.get("pixelx.run_id", "")
        if files:
            client.download_artifacts(info.run_id, "", f"{downloads}/{pixelx_id}")
        out.append({
            "experiment": exp.name,
            "name": info.run_name,
            "status": info.status,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "params": data.params,
            "tags": {k: v for k, v in data.tags.items() if not k.startswith("mlflow.")},
            "metrics": metrics,
            "artifacts": sorted(files),
        })
print(json.dumps(sorted(out, key=lambda r: r["name"])))
"#;

fn read_back(uri: &str, scratch: &Path) -> Vec<Value> {
    let script = scratch.join("read_back.py");
    std::fs::write(&script, READ_BACK).unwrap();
    let downloads = scratch.join("downloads");
    let _ = std::fs::remove_dir_all(&downloads);
    let out = Command::new(venv_bin("python"))
        .arg(&script)
        .arg(uri)
        .arg(&downloads)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "reading MLflow back failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn millis(at: &Value) -> Value {
    match at.as_str() {
        Some(s) => chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_millis()
            .into(),
        None => Value::Null,
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Asserts MLflow holds exactly what the registry and `pixelx report --format json` hold.
fn assert_matches_registry(runs: &Path, mlflow: &[Value], scratch: &Path) {
    let (ok, json, stderr) = run_in(runs, &["report", "--format", "json"]);
    assert!(ok, "{stderr}");
    let report: Value = serde_json::from_str(&json).unwrap();
    let report = report["runs"].as_array().unwrap();
    assert_eq!(
        mlflow.len(),
        report.len(),
        "one MLflow run per pixelx run, none twice: {mlflow:#?}"
    );
    let registry = support::registry_read_only(runs);
    let sample_epochs = registry.sample_epochs(None).unwrap();
    for r in report {
        let id = r["id"].as_str().unwrap();
        let m = mlflow
            .iter()
            .find(|m| m["tags"]["pixelx.run_id"] == id)
            .unwrap_or_else(|| panic!("run {id} is not in MLflow"));
        let status = r["status"].as_str().unwrap();
        assert_eq!(m["name"], id);
        assert_eq!(m["experiment"], r["experiment"]);
        let expected = match status {
            "completed" => "FINISHED",
            "pruned" => "KILLED",
            "failed" => "FAILED",
            other => panic!("unexpected status {other}"),
        };
        assert_eq!(m["status"], expected, "{id}");
        assert_eq!(m["tags"]["pixelx.status"], status, "{id}");
        assert_eq!(m["tags"]["pixelx.search_method"], r["method"], "{id}");
        assert_eq!(
            m["tags"].get("pixelx.trial").is_some(),
            !r["trial"].is_null(),
            "{id}"
        );
        if !r["started_at"].is_null() {
            assert_eq!(m["start_time"], millis(&r["started_at"]), "{id}");
        }
        assert_eq!(m["end_time"], millis(&r["finished_at"]), "{id}");
        match status {
            "pruned" => {
                let reason = m["tags"]["pixelx.prune_reason"].as_str().unwrap();
                assert_eq!(reason, r["error"].as_str().unwrap(), "{id}");
                assert!(reason.contains("asha"), "{reason}");
            }
            "failed" => assert_eq!(m["tags"]["pixelx.error"], r["error"], "{id}"),
            _ => assert!(m["tags"].get("pixelx.prune_reason").is_none()),
        }
        // Parameters: every one, as the registry's params table writes it.
        let params = r["params"].as_object().unwrap();
        let mp = m["params"].as_object().unwrap();
        assert_eq!(mp.len(), params.len(), "{id}: {mp:?}");
        for (k, v) in params {
            assert_eq!(mp[k].as_str(), Some(text(v).as_str()), "{id}: param {k}");
        }
        // Metrics: every registry value at its step (per-epoch ones at their epoch), bit for bit.
        let mut want: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
        for m in registry.metric_history(id).unwrap() {
            want.entry(m.name).or_default().push((m.step, m.value.to_bits()));
        }
        let mut got: BTreeMap<String, Vec<(i64, u64)>> = BTreeMap::new();
        for (name, rows) in m["metrics"].as_object().unwrap() {
            for row in rows.as_array().unwrap() {
                let value = row[1].as_f64().unwrap_or_else(|| panic!("{id} {name}: {row}"));
                got.entry(name.clone())
                    .or_default()
                    .push((row[0].as_i64().unwrap(), value.to_bits()));
            }
        }
        assert_eq!(got, want, "{id}: metric histories");
        if let Some(best) = r["best"].as_object() {
            let epoch = best["epoch"].as_i64().unwrap();
            let at_best = got["test_bpd8"].iter().find(|(s, _)| *s == epoch).unwrap();
            assert_eq!(f64::from_bits(at_best.1), best["bpd8"].as_f64().unwrap(), "{id}");
        }
        // Artefacts: the config, every sample grid, and the best checkpoint as `pixelx export`
        // writes it.
        let folder = runs.join(id);
        let downloaded = scratch.join("downloads").join(id);
        let mut want_files = vec!["config.toml".to_owned()];
        for epoch in sample_epochs.get(id).into_iter().flatten() {
            let name = format!("samples/epoch-{epoch:04}.png");
            assert_eq!(
                std::fs::read(downloaded.join(&name)).unwrap(),
                std::fs::read(folder.join(&name)).unwrap(),
                "{id}: {name}"
            );
            want_files.push(name);
        }
        assert_eq!(
            std::fs::read(downloaded.join("config.toml")).unwrap(),
            std::fs::read(folder.join("config.toml")).unwrap()
        );
        if folder.join("checkpoints/best.safetensors").exists() {
            want_files.push("model/model.safetensors".into());
            let exported = scratch.join(format!("{id}.safetensors"));
            let (ok, _, stderr) = run_in(runs, &["export", id, "--out", exported.to_str().unwrap()]);
            assert!(ok, "{stderr}");
            let a = pixelx::weights::load(&exported).unwrap();
            let b = pixelx::weights::load(&downloaded.join("model/model.safetensors")).unwrap();
            assert_eq!(a.metadata, b.metadata, "{id}");
            assert_eq!(
                a.tensors.keys().collect::<Vec<_>>(),
                b.tensors.keys().collect::<Vec<_>>()
            );
            for (name, t) in &a.tensors {
                assert!(t.equal(&b.tensors[name]), "{id}: tensor {name}");
            }
        } else {
            assert_eq!(status, "failed", "{id}: only the failed run has no checkpoint");
        }
        want_files.sort();
        assert_eq!(m["artifacts"], serde_json::json!(want_files), "{id}");
    }
}

fn sync(runs: &Path, uri: &str, extra: &[&str]) -> (bool, String, String) {
    let mut args = vec!["sync", "mlflow", "--uri", uri];
    args.extend_from_slice(extra);
    run_in(runs, &args)
}

#[test]
fn a_sweep_reads_back_from_mlflow_exactly_survives_a_dead_server_and_never_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("runs");
    let scratch = dir.path().join("scratch");
    let store = dir.path().join("mlflow");
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    // A CIFAR-10 folder whose files are there but empty: the CIFAR run fails when it reads them,
    // a real failed run.
    let cifar = dir.path().join("cifar");
    std::fs::create_dir_all(&cifar).unwrap();
    for name in [
        "data_batch_1",
        "data_batch_2",
        "data_batch_3",
        "data_batch_4",
        "data_batch_5",
        "test_batch",
    ] {
        std::fs::write(cifar.join(format!("{name}.bin")), b"").unwrap();
    }
    // The best learning rate first, so ASHA prunes the later ones at its first rung: one run at a
    // time (the default packs two side by side here, and then which reaches the rung first is
    // a race).
    let scheduler = "devices = [\"cpu\"]\nruns_per_device = 1";
    let text = support::tiny_experiment("mlsync", 3, 256, "learning_rate = [3e-2, 1e-2, 1e-4]", scheduler)
        .replace("lr_schedule = \"cosine\"", "lr_schedule = \"constant\"")
        + "\n[[points]]\nlearning_rate = 1e-3\ndataset = \"cifar\"\ndata_channels = 3\nhidden_fmaps = 9\nout_hidden_fmaps = 9\n"
        + "\n[pruner]\nkind = \"asha\"\ngrace_epochs = 1\nreduction_factor = 3\n";
    let file = dir.path().join("mlsync.toml");
    std::fs::write(&file, text).unwrap();
    let out = support::pixelx()
        .env("PIXELX_CIFAR_DIR", &cifar)
        .arg("--runs-dir")
        .arg(&runs)
        .args(["-q", "run"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 completed") && stdout.contains("2 pruned") && stdout.contains("1 failed"),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Errors before any server: nothing to talk to, an answer that never comes.
    let (ok, _, stderr) = sync(&runs, &format!("http://127.0.0.1:{}", free_port()), &[]);
    assert!(
        !ok && stderr.contains("cannot reach the MLflow server") && stderr.contains("connection refused"),
        "{stderr}"
    );
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_uri = format!("http://127.0.0.1:{}", silent.local_addr().unwrap().port());
    let out = support::pixelx()
        .env("MLFLOW_HTTP_REQUEST_TIMEOUT", "1")
        .env("MLFLOW_TRACKING_TOKEN", "t0ps3cret")
        .arg("--runs-dir")
        .arg(&runs)
        .args(["sync", "mlflow", "--uri", &silent_uri])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("did not answer") && stderr.contains("within 1 s"),
        "{stderr}"
    );
    assert!(!stderr.contains("t0ps3cret"));
    drop(silent);

    // A dry run contacts nothing and records nothing.
    let (ok, stdout, stderr) = sync(&runs, "http://127.0.0.1:9/", &["--dry-run"]);
    assert!(ok && stdout.contains("would send 4 new runs"), "{stdout}{stderr}");

    let port = free_port();
    let mut server = Mlflow::start(&store, port);
    let proxy = Proxy::start(port);
    proxy.server_pid.store(server.child.id(), Ordering::SeqCst);

    // A path the server does not serve: a refusal, in words.
    let (ok, _, stderr) = sync(&runs, &format!("{}/not-mlflow", server.uri()), &[]);
    assert!(
        !ok && stderr.contains("refused") && stderr.contains("HTTP 404"),
        "{stderr}"
    );

    // The server dies mid-sync, right after creating the second run, before its answer arrives:
    // the worst case, a run MLflow has that the registry does not know was sent.
    *proxy.cut.lock().unwrap() = Some(("/runs/create", 2));
    let (ok, stdout, stderr) = sync(&runs, &proxy.uri(), &[]);
    assert!(!ok, "{stdout}{stderr}");
    assert!(
        stderr.contains(&format!("the MLflow server at {}", proxy.uri()))
            && stderr.contains("the next sync sends what this one did not"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    let _ = server.child.wait();
    let (served, cut_after) = (
        proxy.served.load(Ordering::SeqCst),
        proxy.cut_after.load(Ordering::SeqCst),
    );
    assert!(
        cut_after > 5 && served <= cut_after + 1,
        "the sync stopped at the dead server: {served} requests, the server killed after {cut_after}"
    );

    // Restarted on the same store, the next sync completes exactly what was cut off.
    let server = Mlflow::start(&store, port);
    let (ok, stdout, stderr) = sync(&runs, &proxy.uri(), &[]);
    assert!(ok && stdout.contains("4 runs"), "{stdout}{stderr}");
    let first = read_back(&server.uri(), &scratch);
    assert_matches_registry(&runs, &first, &scratch);

    // Again, with credentials in the URI (the server ignores them): the same server to the
    // registry, so nothing new is sent, nothing in MLflow changes, and the password is nowhere.
    let with_password = proxy.uri().replace("http://", "http://ann:pa55w0rd@");
    let (ok, stdout, stderr) = sync(&runs, &with_password, &[]);
    assert!(ok && stdout.contains("nothing new to send"), "{stdout}{stderr}");
    assert!(stdout.contains(&proxy.uri()) && !(stdout + &stderr).contains("pa55w0rd"));
    for file in ["registry.sqlite", "registry.sqlite-wal"] {
        let bytes = std::fs::read(runs.join(file)).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains("pa55w0rd"),
            "{file} holds the password"
        );
    }
    assert_eq!(read_back(&server.uri(), &scratch), first);

    // A pruned run continued by hand: the next sync updates its status, end time and metrics.
    let pruned = first
        .iter()
        .find(|r| r["tags"]["pixelx.status"] == "pruned")
        .unwrap()["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (ok, stdout, stderr) = run_in(&runs, &["-q", "resume", "--force", &pruned]);
    assert!(ok && stdout.contains("completed"), "{stdout}{stderr}");
    let (ok, dry, stderr) = sync(&runs, &proxy.uri(), &["--dry-run"]);
    assert!(
        ok && dry.contains("would send 0 new runs") && dry.contains("1 status updates"),
        "{dry}{stderr}"
    );
    let (ok, stdout, stderr) = sync(&runs, &proxy.uri(), &[]);
    assert!(ok, "{stdout}{stderr}");
    assert_eq!(
        stdout.replace("sent", "would send"),
        dry,
        "the dry run said what the sync sent"
    );
    let after = read_back(&server.uri(), &scratch);
    assert_matches_registry(&runs, &after, &scratch);
    let resumed = after.iter().find(|r| r["name"] == pruned.as_str()).unwrap();
    assert_eq!(resumed["status"], "FINISHED");
    assert!(resumed["tags"].get("pixelx.prune_reason").is_none());
}
