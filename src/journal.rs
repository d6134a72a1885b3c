//! A run's journal: the append-only, fsync'd record a worker keeps in its own run folder
//! (`runs/<id>/journal.jsonl`, one JSON event per line), and the decisions file through which
//! the coordinator answers it (`runs/<id>/decisions.jsonl`).
//!
//! Workers never open the registry: SQLite locking is unreliable on network filesystems, and a
//! Slurm worker runs on another machine. The coordinator is the registry's one writer; it
//! ingests journals (remembering how far it has read each) and, where a pruner is configured,
//! tells each worker after every epoch whether to go on. The same path serves local workers,
//! Slurm jobs, and `pixelx train` (which ingests its own journal as it goes).

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::metrics::{nan_if_null, EvalMetrics};
use crate::precision::Precision;

/// What one finished epoch measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: u32,
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    pub test: EvalMetrics,
    #[serde(deserialize_with = "nan_if_null")]
    pub learning_rate: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub images_per_sec: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub seconds: f64,
}

/// One optimiser step: (global step, loss, learning rate).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepRecord(
    pub i64,
    #[serde(deserialize_with = "nan_if_null")] pub f64,
    #[serde(deserialize_with = "nan_if_null")] pub f64,
);

/// A checkpoint file as written: its name in the run's `checkpoints/` folder and its checksum.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointRecord {
    pub file: String,
    pub sha256: String,
    pub size: u64,
}

/// How a worker left its run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FinalStatus {
    Completed,
    Interrupted,
    Failed,
    Diverged,
    Pruned,
}

/// One line of a journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A worker took the run, resuming from `checkpoint` (None: from the start). `history` is
    /// every epoch that checkpoint has done: what an ingester must hold for them, even if it
    /// missed their `epoch` lines (a crash between checkpoint and journal).
    Started {
        pid: u32,
        host: String,
        device: String,
        /// The Slurm job, when there is one.
        job: Option<String>,
        checkpoint: Option<String>,
        epochs_done: u32,
        global_step: i64,
        steps_per_epoch: i64,
        history: Vec<EpochRecord>,
        /// The precision it trains in (`auto` resolved for its device); absent in journals
        /// from before it was recorded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        precision: Option<Precision>,
    },
    /// Optimiser steps since the last `steps` line, and where the epoch stands.
    Steps {
        epoch: u32,
        step_in_epoch: i64,
        steps_per_epoch: i64,
        #[serde(deserialize_with = "nan_if_null")]
        images_per_sec: f64,
        steps: Vec<StepRecord>,
    },
    /// An epoch finished and its checkpoint is on disk.
    Epoch {
        record: EpochRecord,
        checkpoint: CheckpointRecord,
        best: bool,
        /// The worker's peak resident memory so far, in MiB.
        #[serde(default)]
        peak_rss_mb: Option<f64>,
        /// The worker's torch threads: what its images/s were measured with, so that estimates
        /// from history compare like with like.
        #[serde(default)]
        threads: Option<u32>,
    },
    /// The sample grid of an epoch (written after the epoch's checkpoint).
    Samples { epoch: u32, file: String },
    /// A checkpoint in the middle of an epoch, on a stop request.
    Checkpoint {
        checkpoint: CheckpointRecord,
        epochs_done: u32,
        step_in_epoch: i64,
    },
    /// The worker stopped.
    Finished {
        status: FinalStatus,
        detail: Option<String>,
    },
}

#[derive(Serialize, Deserialize)]
struct Line {
    at: String,
    #[serde(flatten)]
    event: Event,
}

pub fn journal_path(run_dir: &Path) -> PathBuf {
    run_dir.join("journal.jsonl")
}

pub fn decisions_path(run_dir: &Path) -> PathBuf {
    run_dir.join("decisions.jsonl")
}

/// Appends `value` as one JSON line with a single write, then syncs it to disk.
fn append_line<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut line = serde_json::to_vec(value)?;
    line.push(b'\n');
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    f.write_all(&line)
        .and_then(|()| f.sync_data())
        .with_context(|| format!("writing {}", path.display()))
}

/// Appends one event to a run's journal.
pub fn append(run_dir: &Path, event: Event) -> Result<()> {
    let line = Line {
        at: crate::host::now(),
        event,
    };
    append_line(&journal_path(run_dir), &line)
}

/// Prepares a run's journal for a new writer: a last line without its newline (the previous
/// writer was killed mid-write) is cut off, so that the first new event does not land glued to
/// it and get lost with it. The cut bytes are kept in `journal.jsonl.torn-<offset>` for
/// inspection. Returns that side file when there was a torn tail. Only the holder of the run's
/// folder lock may call this: it is then the journal's one writer.
pub fn cut_torn_tail(run_dir: &Path) -> Result<Option<PathBuf>> {
    let path = journal_path(run_dir);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        _ => crate::fsio::check_regular_file(&path, "journal", None)?,
    };
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    let len = f.metadata()?.len();
    // Read back from the end until a newline: the tail is usually short, the journal long.
    let mut tail = Vec::new();
    let mut end = len;
    let complete = loop {
        let start = end.saturating_sub(64 * 1024);
        let mut chunk = vec![0; (end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut chunk)
            .with_context(|| format!("reading {}", path.display()))?;
        chunk.extend_from_slice(&tail);
        tail = chunk;
        if let Some(i) = tail[..(end - start) as usize].iter().rposition(|&b| b == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        end = start;
    };
    if complete == len {
        return Ok(None);
    }
    let torn = &tail[tail.len() - (len - complete) as usize..];
    let kept = run_dir.join(format!("journal.jsonl.torn-{complete}"));
    crate::fsio::write_atomically(&kept, torn)?;
    f.set_len(complete)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cutting the torn last line of {}", path.display()))?;
    tracing::warn!(
        "{}: cut a torn last line of {} bytes (a writer was killed mid-write); kept in {}",
        path.display(),
        len - complete,
        kept.display()
    );
    Ok(Some(kept))
}

/// A journal that cannot be read (not a file, no permission): the run it belongs to cannot be
/// followed, but other runs can.
#[derive(Debug, thiserror::Error)]
#[error("cannot read the journal {path}: {cause}")]
pub struct Unreadable {
    pub path: String,
    pub cause: String,
}

/// Events read from a journal, each with the time it was written.
pub struct ReadEvents {
    pub events: Vec<(String, Event)>,
    /// Where the next read starts: past the last complete line.
    pub offset: u64,
    /// Complete lines that did not parse (skipped, so one bad line cannot wedge ingestion).
    pub bad_lines: usize,
}

/// Reads the complete lines of a journal from byte `offset` on. A line still being written (no
/// newline yet) is left for the next read. A journal shorter than `offset` was replaced (the run
/// was reset), so reading starts over.
pub fn read_from(run_dir: &Path, offset: u64) -> Result<ReadEvents> {
    let path = journal_path(run_dir);
    let unreadable = |cause: String| Unreadable {
        path: path.display().to_string(),
        cause,
    };
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(ReadEvents {
                events: Vec::new(),
                offset: 0,
                bad_lines: 0,
            })
        }
        Err(e) => return Err(unreadable(e.to_string()).into()),
    };
    let meta = f.metadata().map_err(|e| unreadable(e.to_string()))?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "not a regular file"
        };
        return Err(unreadable(format!("it is {what}")).into());
    }
    let len = meta.len();
    let start = if len < offset { 0 } else { offset };
    let mut bytes = Vec::new();
    f.seek(SeekFrom::Start(start))
        .and_then(|_| f.read_to_end(&mut bytes))
        .map_err(|e| unreadable(e.to_string()))?;
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    let mut events = Vec::new();
    let mut bad_lines = 0;
    for line in bytes[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        match serde_json::from_slice::<Line>(line) {
            Ok(l) => events.push((l.at, l.event)),
            Err(e) => {
                bad_lines += 1;
                tracing::warn!("{}: skipping an unreadable line: {e}", path.display());
            }
        }
    }
    Ok(ReadEvents {
        events,
        offset: start + complete as u64,
        bad_lines,
    })
}

/// Whether the journal holds lines past `offset` that have not been ingested.
pub fn has_unread(run_dir: &Path, offset: u64) -> bool {
    std::fs::metadata(journal_path(run_dir)).is_ok_and(|m| m.len() > offset)
}

/// Checksums of the checkpoints the journal says were written, by file name: how a checkpoint
/// whose `.sha256` sidecar was lost is still verified.
pub fn recorded_checksums(run_dir: &Path) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Ok(read) = read_from(run_dir, 0) {
        for (_, event) in read.events {
            match event {
                Event::Epoch { checkpoint, .. } | Event::Checkpoint { checkpoint, .. } => {
                    out.insert(checkpoint.file, checkpoint.sha256);
                }
                _ => {}
            }
        }
    }
    out
}

/// The coordinator's answer to a worker that finished an epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub epoch: u32,
    pub prune: bool,
    pub rule: String,
    pub detail: String,
}

/// Records a decision for the worker to read.
pub fn write_decision(run_dir: &Path, decision: &Decision) -> Result<()> {
    append_line(&decisions_path(run_dir), decision)
}

/// The decision for `epoch`, if the coordinator has written it.
pub fn read_decision(run_dir: &Path, epoch: u32) -> Result<Option<Decision>> {
    let path = decisions_path(run_dir);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    Ok(text
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Decision>(l).ok())
        .find(|d| d.epoch == epoch))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(epoch: u32, nll: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            train_loss: f64::NAN,
            test: EvalMetrics::from_totals(nll, 7.0, 1.0),
            learning_rate: 1e-3,
            images_per_sec: 10.0,
            seconds: 1.0,
        }
    }

    #[test]
    fn events_round_trip_and_partial_lines_wait() {
        let dir = tempfile::tempdir().unwrap();
        let ckpt = CheckpointRecord {
            file: "epoch-0001.safetensors".into(),
            sha256: "ab".into(),
            size: 3,
        };
        append(
            dir.path(),
            Event::Epoch {
                record: record(1, 0.1),
                checkpoint: ckpt.clone(),
                best: true,
                peak_rss_mb: None,
                threads: None,
            },
        )
        .unwrap();
        // A writer that died mid-line leaves an incomplete line: not read, not an error.
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(dir.path()))
            .unwrap();
        f.write_all(b"{\"at\":\"x\",\"event\":\"fin").unwrap();
        let read = read_from(dir.path(), 0).unwrap();
        assert_eq!(read.events.len(), 1);
        match &read.events[0].1 {
            Event::Epoch { record: r, .. } => {
                assert!(r.train_loss.is_nan(), "NaN survives as null");
                assert_eq!(r.test, record(1, 0.1).test);
            }
            other => panic!("{other:?}"),
        }
        assert!(
            has_unread(dir.path(), read.offset),
            "the partial line is still unread"
        );
        assert_eq!(read_from(dir.path(), read.offset).unwrap().events.len(), 0);
        assert_eq!(recorded_checksums(dir.path())["epoch-0001.safetensors"], "ab");
    }

    #[test]
    fn a_torn_tail_is_cut_and_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(cut_torn_tail(dir.path()).unwrap(), None, "no journal yet");
        append(
            dir.path(),
            Event::Finished {
                status: FinalStatus::Failed,
                detail: None,
            },
        )
        .unwrap();
        let whole = std::fs::read(journal_path(dir.path())).unwrap();
        assert_eq!(cut_torn_tail(dir.path()).unwrap(), None, "nothing torn");
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(dir.path()))
            .unwrap();
        f.write_all(b"{\"at\":\"x\",\"ev").unwrap();
        let kept = cut_torn_tail(dir.path()).unwrap().expect("a torn tail");
        assert_eq!(std::fs::read(&kept).unwrap(), b"{\"at\":\"x\",\"ev");
        assert_eq!(std::fs::read(journal_path(dir.path())).unwrap(), whole);
        append(
            dir.path(),
            Event::Finished {
                status: FinalStatus::Completed,
                detail: None,
            },
        )
        .unwrap();
        assert_eq!(read_from(dir.path(), 0).unwrap().events.len(), 2);
        // A journal that is one torn line and nothing else is emptied.
        std::fs::write(journal_path(dir.path()), b"{\"at").unwrap();
        assert!(cut_torn_tail(dir.path()).unwrap().is_some());
        assert_eq!(std::fs::metadata(journal_path(dir.path())).unwrap().len(), 0);
    }

    #[test]
    fn the_last_decision_for_an_epoch_counts() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read_decision(dir.path(), 1).unwrap(), None);
        let d = |epoch, prune| Decision {
            epoch,
            prune,
            rule: "r".into(),
            detail: "d".into(),
        };
        write_decision(dir.path(), &d(1, false)).unwrap();
        write_decision(dir.path(), &d(2, true)).unwrap();
        assert_eq!(read_decision(dir.path(), 2).unwrap(), Some(d(2, true)));
        assert_eq!(read_decision(dir.path(), 1).unwrap(), Some(d(1, false)));
    }
}
