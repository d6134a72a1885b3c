//! `just bench report` (`cargo bench --bench report`): the comparison views over many recorded
//! runs, 1,000 unless `PIXELX_BENCH_RUNS` says otherwise (a count or a list such as
//! `1000,10000,100000`, each measured on its own registry, so growth is visible). A synthetic
//! registry is written through the registry's own API, as a worker records
//! (10 epochs and 500 steps per run, sample grids on disk at epochs 5 and 10, a few diverged
//! and failed runs), then:
//!
//! - the HTML report: time to read and write it, and its size;
//! - the dashboard (in-process, on a free loopback port): time to first byte and page size of
//!   `/` and of one `/runs/<id>`, first (rendered) and again (cached, same registry state), and
//!   of one sample image.
//!
//! Figures are printed, wall time and the CPU time this process used (on a shared machine the
//! wall time grows with the other work, the CPU time much less); nothing is asserted about time.
//! `PIXELX_BENCH_DIR=DIR` keeps each synthetic registry under `DIR/<runs>` and reuses it on the
//! next run (writing 100,000 runs takes most of an hour on 2 cores); a registry left by an
//! interrupted write is reused as it is, so remove the folder after one.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, Instant};

mod support;

use pixelx::config::{ExperimentInfo, LrSchedule, RunConfig};
use pixelx::data::DatasetKind;
use pixelx::journal::FinalStatus;
use pixelx::registry::{Registry, RunFilter};
use pixelx::run_dir::RunDir;
use pixelx::serve::{ServeOptions, Server};
use support::SyntheticEpoch;

/// Run counts measured when `PIXELX_BENCH_RUNS` is not set.
const DEFAULT_RUNS: &[u64] = &[1000];
const EPOCHS: u32 = 10;
const STEPS: i64 = 500;

/// A small grayscale PNG like a sample grid (noise, so it does not compress away).
fn write_png(path: &Path, seed: u64) {
    let (w, h) = (140u32, 56u32);
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    let pixels: Vec<u8> = (0..w * h)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            if (x >> 33).is_multiple_of(5) {
                255
            } else {
                0
            }
        })
        .collect();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    image::GrayImage::from_raw(w, h, pixels)
        .unwrap()
        .save(path)
        .unwrap();
}

fn synthetic_registry(runs_dir: &Path, runs: u64) -> Registry {
    let path = runs_dir.join("registry.sqlite");
    let mut reg = Registry::open(&path).unwrap();
    let info = ExperimentInfo {
        dataset: Some(DatasetKind::Mnist),
        ..ExperimentInfo::named("bench_sweep", &format!("{runs} synthetic runs"))
    };
    let exp = reg.upsert_experiment(&info, None, Default::default()).unwrap();
    for i in 0..runs {
        let id = format!("{i:012x}");
        let r = synthetic_run(i);
        let dir = RunDir::new(runs_dir, &id);
        reg.add_run(exp, &id, &r.config, &dir.root, None).unwrap();
        let epochs: Vec<SyntheticEpoch> = (1..=r.stop)
            .map(|epoch| SyntheticEpoch {
                bpd8: r.bpd8(epoch),
                samples: epoch % 5 == 0,
            })
            .collect();
        for epoch in (1..=r.stop).filter(|e| e % 5 == 0) {
            write_png(&dir.epoch_samples(epoch), i * 100 + epoch as u64);
        }
        let detail = (r.stop < EPOCHS).then(|| "synthetic".to_owned());
        support::write_journal(
            &dir.root,
            STEPS * r.stop as i64 / EPOCHS as i64,
            &epochs,
            |step| r.loss(step),
            Some((r.status, detail)),
        );
        reg.ingest(&id, &dir.root).unwrap();
    }
    reg
}

/// Run counts above this are written with SQL in one transaction (the same rows ingestion
/// writes, then `Registry::rebuild_results`): journalling and ingesting 100,000 runs one by one
/// takes most of an hour on 2 cores, and what the views read does not depend on how the rows got
/// there.
const JOURNALLED_RUNS: u64 = 10_000;

/// [`synthetic_registry`]'s runs, written directly (no `params` or `run_events` rows: the views
/// read neither).
fn synthetic_registry_sql(runs_dir: &Path, runs: u64) -> Registry {
    let path = runs_dir.join("registry.sqlite");
    std::fs::create_dir_all(runs_dir).unwrap();
    let mut reg = Registry::open(&path).unwrap();
    let info = ExperimentInfo {
        dataset: Some(DatasetKind::Mnist),
        ..ExperimentInfo::named("bench_sweep", &format!("{runs} synthetic runs"))
    };
    let exp = reg.upsert_experiment(&info, None, Default::default()).unwrap();
    drop(reg);
    let mut conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "synchronous", "OFF").unwrap();
    let tx = conn.transaction().unwrap();
    {
        let mut run = tx
            .prepare(
                "INSERT INTO runs (id, experiment_id, config_json, config_hash, status, run_dir, created_at,
                                   started_at, finished_at, error, method)
                 VALUES (?1, ?2, ?3, ?1, ?4, ?5, ?6, ?6, ?6, ?7, 'grid')",
            )
            .unwrap();
        let mut metric = tx
            .prepare("INSERT INTO metrics (run_id, name, step, epoch, value) VALUES (?1, ?2, ?3, ?4, ?5)")
            .unwrap();
        let mut checkpoint = tx
            .prepare(
                "INSERT INTO checkpoints (run_id, path, size, sha256, epoch, is_best, created_at)
                 VALUES (?1, ?2, 1, '00', ?3, ?4, '2026-01-01T00:00:00Z')",
            )
            .unwrap();
        let mut sample = tx
            .prepare(
                "INSERT INTO samples (run_id, path, epoch, labels, created_at)
                 VALUES (?1, ?2, ?3, '0..9 cycling', '2026-01-01T00:00:00Z')",
            )
            .unwrap();
        for i in 0..runs {
            let r = synthetic_run(i);
            let id = format!("{i:012x}");
            let dir = RunDir::new(runs_dir, &id);
            let status = match r.status {
                FinalStatus::Diverged => "diverged",
                FinalStatus::Failed => "failed",
                _ => "completed",
            };
            let detail = (r.stop < EPOCHS).then_some("synthetic");
            run.execute(rusqlite::params![
                id,
                exp,
                serde_json::to_string(&r.config).unwrap(),
                status,
                dir.root.display().to_string(),
                format!("2026-01-01T00:00:00.{i:09}Z"),
                detail
            ])
            .unwrap();
            let steps = STEPS * r.stop as i64 / EPOCHS as i64;
            for step in 1..=steps {
                metric
                    .execute(rusqlite::params![
                        id,
                        "train_loss",
                        step,
                        None::<i64>,
                        r.loss(step)
                    ])
                    .unwrap();
                metric
                    .execute(rusqlite::params![id, "lr", step, None::<i64>, 1e-3])
                    .unwrap();
            }
            let mut best = f64::INFINITY;
            for epoch in 1..=r.stop {
                let bpd8 = r.bpd8(epoch);
                for (name, value) in [
                    ("epoch_train_loss", 0.2),
                    ("test_nll", (bpd8 - 7.0).max(0.05) * std::f64::consts::LN_2),
                    ("test_bpd", bpd8 - 7.0),
                    ("test_bpd8", bpd8),
                    ("images_per_sec", 900.0),
                    ("epoch_seconds", 12.0),
                ] {
                    metric
                        .execute(rusqlite::params![id, name, epoch, epoch, value])
                        .unwrap();
                }
                let is_best = bpd8 <= best && (epoch + 1..=r.stop).all(|e| r.bpd8(e) > bpd8);
                best = best.min(bpd8);
                checkpoint
                    .execute(rusqlite::params![
                        id,
                        format!("checkpoints/epoch-{epoch:04}.safetensors"),
                        epoch,
                        is_best
                    ])
                    .unwrap();
                if epoch % 5 == 0 {
                    sample
                        .execute(rusqlite::params![
                            id,
                            format!("samples/epoch-{epoch:04}.png"),
                            epoch
                        ])
                        .unwrap();
                    write_png(&dir.epoch_samples(epoch), i * 100 + epoch as u64);
                }
            }
        }
    }
    tx.commit().unwrap();
    drop(conn);
    let mut reg = Registry::open(&path).unwrap();
    reg.rebuild_results().unwrap();
    reg
}

/// One synthetic run: its configuration, how it ends and its quality.
struct SyntheticRun {
    i: u64,
    config: RunConfig,
    stop: u32,
    status: FinalStatus,
    quality: f64,
}

impl SyntheticRun {
    fn bpd8(&self, epoch: u32) -> f64 {
        1.05 + self.quality + 0.4 / epoch as f64
    }

    fn loss(&self, step: i64) -> f64 {
        let t = step as f64 / STEPS as f64;
        let noise = ((step * 7919 + self.i as i64 * 104729) % 1000) as f64 / 1000.0 - 0.5;
        0.12 + self.quality * 0.3 + 0.6 * (-6.0 * t).exp() + 0.02 * noise
    }
}

fn synthetic_run(i: u64) -> SyntheticRun {
    let lr = [1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2][(i % 7) as usize];
    let fmaps = [16, 30, 60][(i / 7 % 3) as usize];
    let config = RunConfig {
        seed: i,
        learning_rate: lr,
        hidden_fmaps: fmaps,
        lr_schedule: if i.is_multiple_of(2) {
            LrSchedule::Cosine
        } else {
            LrSchedule::Constant
        },
        epochs: EPOCHS,
        ..RunConfig::default()
    };
    // Every 50th run diverges after 3 epochs, every 77th fails after 6.
    let (stop, status) = if i % 50 == 49 {
        (3, FinalStatus::Diverged)
    } else if i % 77 == 76 {
        (6, FinalStatus::Failed)
    } else {
        (EPOCHS, FinalStatus::Completed)
    };
    let quality = (lr.log10() + 2.7).abs() * 0.08 + (60 - fmaps) as f64 * 1e-3 + (i % 13) as f64 * 2e-3;
    SyntheticRun {
        i,
        config,
        stop,
        status,
        quality,
    }
}

/// CPU seconds this process has used (every thread: the dashboard serves from this process),
/// which a machine shared with other work does not inflate as it does wall time.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Time to first byte and the whole response of `GET path`.
fn fetch(addr: &str, path: &str) -> (Duration, u16, usize) {
    let mut s = TcpStream::connect(addr).unwrap();
    let start = Instant::now();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut first = [0u8; 1];
    s.read_exact(&mut first).unwrap();
    let ttfb = start.elapsed();
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).unwrap();
    let raw = [&first[..], &rest].concat();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]);
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (ttfb, status, raw.len() - split - 4)
}

/// The run counts to measure: `PIXELX_BENCH_RUNS` (`1000` or `1000,10000,100000`), else
/// [`DEFAULT_RUNS`].
fn run_counts() -> Vec<u64> {
    match std::env::var("PIXELX_BENCH_RUNS") {
        Ok(list) => list
            .split(',')
            .filter(|n| !n.trim().is_empty())
            .map(|n| {
                n.trim().replace('_', "").parse().unwrap_or_else(|_| {
                    panic!("PIXELX_BENCH_RUNS: `{n}` is not a run count (e.g. 1000,10000)")
                })
            })
            .collect(),
        Err(_) => DEFAULT_RUNS.to_vec(),
    }
}

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if !(wanted.is_empty() || wanted.iter().any(|w| "report".contains(w.as_str()))) {
        return;
    }
    for runs in run_counts() {
        measure(runs);
    }
    // `PIXELX_BENCH_COORDINATOR=0` leaves the coordinator out (when only the views changed).
    if std::env::var("PIXELX_BENCH_COORDINATOR").as_deref() != Ok("0") {
        coordinator(COORDINATOR_RUNS);
    }
}

/// Runs of the coordinator's sweep.
const COORDINATOR_RUNS: usize = 10_000;

/// The coordinator over a grid of `runs` runs, through `schedule::run_experiment` (its loop is
/// private): registering the sweep (every run queued), then a whole sweep over the registered
/// runs when they are all finished, which is `prepare` (register, ingest every journal, queue
/// the unfinished) and one pass of the loop (ingest, reap, fill) that finds nothing to start.
/// Nothing trains: a queued run would start a worker process.
fn coordinator(runs: usize) {
    use pixelx::config::Experiment;
    use pixelx::schedule::{run_experiment, NoSweepObserver, SweepOptions};
    let dir = tempfile::tempdir().unwrap();
    let runs_dir = dir.path().join("runs");
    let file = dir.path().join("sweep.toml");
    let seeds: Vec<String> = (0..runs).map(|s| s.to_string()).collect();
    std::fs::write(
        &file,
        format!(
            "[experiment]\nname = \"bench_coordinator\"\ndataset = \"mnist\"\nmax_runs = {runs}\n\n\
             [defaults]\nepochs = 1\n\n[grid]\nseed = [{}]\n",
            seeds.join(", ")
        ),
    )
    .unwrap();
    let start = Instant::now();
    let experiment = Experiment::load(&file, &[]).unwrap();
    let load = start.elapsed().as_secs_f64();
    let registry = runs_dir.join("registry.sqlite");
    let start = Instant::now();
    {
        let mut reg = Registry::open(&registry).unwrap();
        let exp = reg
            .upsert_experiment(&experiment.info, Some(&experiment.file), experiment.search.method)
            .unwrap();
        for spec in &experiment.runs {
            reg.add_run(
                exp,
                &spec.id,
                &spec.config,
                &RunDir::new(&runs_dir, &spec.id).root,
                None,
            )
            .unwrap();
        }
    }
    let register = start.elapsed().as_secs_f64();
    // Every run finished, so the sweep's loop has nothing to start.
    let conn = rusqlite::Connection::open(&registry).unwrap();
    conn.execute("UPDATE runs SET status = 'completed'", []).unwrap();
    drop(conn);
    let opts = SweepOptions {
        runs_dir: runs_dir.clone(),
        data_dir: dir.path().join("data"),
        registry,
        force: false,
        threads: None,
    };
    let start = Instant::now();
    let summary = run_experiment(&experiment, &opts, &mut NoSweepObserver).unwrap();
    let sweep = start.elapsed().as_secs_f64();
    assert_eq!(summary.skipped, runs);
    println!("coordinator: a grid of {runs} runs");
    println!("  load and expand the experiment file   {load:8.3} s");
    println!("  register every run (queued)            {register:8.3} s");
    println!("  prepare + one loop pass, all {runs} registered and finished   {sweep:8.3} s");
}

/// Where the synthetic registry of `runs` runs lives: under `PIXELX_BENCH_DIR` when set (kept
/// after the bench, and reused by the next one: writing 100,000 runs takes many minutes), else in
/// a temporary folder removed at the end.
fn bench_dir(runs: u64) -> (Option<tempfile::TempDir>, std::path::PathBuf) {
    match std::env::var_os("PIXELX_BENCH_DIR") {
        Some(root) => (None, Path::new(&root).join(runs.to_string())),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().to_owned();
            (Some(dir), path)
        }
    }
}

fn measure(runs: u64) {
    let (_temp, dir) = bench_dir(runs);
    let runs_dir = dir.join("runs");
    let start = Instant::now();
    let kept = runs_dir.join("registry.sqlite");
    let (reg, how) = if kept.is_file() {
        (Registry::open(&kept).unwrap(), "reused from PIXELX_BENCH_DIR")
    } else if runs > JOURNALLED_RUNS {
        (
            synthetic_registry_sql(&runs_dir, runs),
            "with SQL in one transaction",
        )
    } else {
        (synthetic_registry(&runs_dir, runs), "journalled and ingested")
    };
    println!(
        "report: {runs} runs x {EPOCHS} epochs x {STEPS} steps, synthetic registry {how} in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    let html = dir.join("report.html");
    let (start, cpu) = (Instant::now(), cpu_seconds());
    // What `pixelx report --html` does for whole experiments: read at scale, draw, write.
    pixelx::report::write_report(&reg, None, "bpd8", &runs_dir, &html).unwrap();
    let (t, t_cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu);
    let size = std::fs::metadata(&html).unwrap().len();
    println!(
        "  [{runs} runs] pixelx report --html     {t:8.3} s   {:8.0} KiB  (read registry, draw, write; \
         CPU {t_cpu:.3} s)",
        size as f64 / 1024.0
    );
    // Every summary, as `pixelx report --format csv` (and the stdout table) reads them: this
    // one grows with the runs by design.
    let (start, cpu) = (Instant::now(), cpu_seconds());
    let all = reg.summaries(&RunFilter::default()).unwrap().len();
    println!(
        "  [{runs} runs] every summary ({all}, as --format csv reads them) {:8.3} s (CPU {:.3} s)",
        start.elapsed().as_secs_f64(),
        cpu_seconds() - cpu
    );

    let server = Server::start(ServeOptions {
        registry: runs_dir.join("registry.sqlite"),
        runs_dir: runs_dir.clone(),
        addr: "127.0.0.1:0".parse().unwrap(),
        experiment: None,
    })
    .unwrap();
    let addr = server.addr.to_string();
    let id = format!("{:012x}", runs / 2);
    for (what, path) in [
        ("GET /", "/".to_owned()),
        (
            "GET sorted page 3",
            "/experiments/bench_sweep?sort=learning_rate&desc=1&page=3".to_owned(),
        ),
        ("GET /runs/<id>", format!("/runs/{id}")),
        ("GET /img/<id>/10", format!("/img/{id}/10")),
    ] {
        let cpu = cpu_seconds();
        let (cold, status, bytes) = fetch(&addr, &path);
        let cold_cpu = cpu_seconds() - cpu;
        assert_eq!(status, 200, "{path}");
        let (warm, _, _) = fetch(&addr, &path);
        println!(
            "  [{runs} runs] dashboard {what:<16} TTFB {:8.3} s first (CPU {cold_cpu:.3} s), {:6.3} s again   {:8.0} KiB",
            cold.as_secs_f64(),
            warm.as_secs_f64(),
            bytes as f64 / 1024.0
        );
    }
    server.stop().unwrap();
}
