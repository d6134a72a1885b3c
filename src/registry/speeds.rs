//! The speed record of finished runs, for estimates: what each completed run measured per epoch
//! and how long it took from its start to its end.

use std::collections::HashMap;

use anyhow::Result;

use super::Registry;
use crate::config::RunConfig;
use crate::precision::Precision;

/// One epoch's speed as recorded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EpochSpeed {
    pub images_per_sec: f64,
    /// Training and evaluation of the epoch.
    pub seconds: Option<f64>,
    /// The worker's torch threads (recorded since estimates exist).
    pub threads: Option<u32>,
}

/// A completed run's configuration, where it ran, and its speed.
#[derive(Debug, Clone)]
pub struct SpeedRecord {
    pub id: String,
    pub config: RunConfig,
    pub device: Option<String>,
    pub host: Option<String>,
    /// Seconds from its worker's start to its end, when one worker ran it from start to end
    /// (a resumed run's span includes the pause).
    pub span_seconds: Option<f64>,
    pub epochs: Vec<EpochSpeed>,
    /// The precision it trained in (`auto` resolved); None where a worker did not record it.
    pub precision: Option<Precision>,
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let a = chrono::DateTime::parse_from_rfc3339(a).ok()?;
    let b = chrono::DateTime::parse_from_rfc3339(b).ok()?;
    Some((b - a).num_milliseconds() as f64 / 1000.0)
}

impl Registry {
    /// Every completed run with its per-epoch speeds.
    pub fn speed_records(&self) -> Result<Vec<SpeedRecord>> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT r.id, r.config_json, r.device, r.host, r.started_at, r.finished_at,
                    (SELECT COUNT(*) FROM run_events ev WHERE ev.run_id = r.id AND ev.status = 'running'),
                    r.precision
             FROM runs r WHERE r.status = 'completed' ORDER BY r.created_at, r.id",
        )?;
        let rows = stmt.query_map([], |r| {
            // A config this version cannot read says nothing about this version's speed.
            let Ok(config) = serde_json::from_str::<RunConfig>(&r.get::<_, String>(1)?) else {
                return Ok(None);
            };
            let (started, finished): (Option<String>, Option<String>) = (r.get(4)?, r.get(5)?);
            let span_seconds = match (started, finished) {
                (Some(s), Some(f)) if r.get::<_, i64>(6)? == 1 => seconds_between(&s, &f),
                _ => None,
            };
            Ok(Some(SpeedRecord {
                id: r.get(0)?,
                config,
                device: r.get(2)?,
                host: r.get(3)?,
                span_seconds,
                epochs: Vec::new(),
                precision: r
                    .get::<_, Option<String>>(7)?
                    .as_deref()
                    .and_then(Precision::parse),
            }))
        })?;
        let mut out = Vec::new();
        let mut index = HashMap::new();
        for record in rows {
            if let Some(record) = record? {
                index.insert(record.id.clone(), out.len());
                out.push(record);
            }
        }
        let mut stmt = conn.prepare(
            "SELECT m.run_id, m.epoch, m.name, m.value FROM metrics m JOIN runs r ON r.id = m.run_id
             WHERE r.status = 'completed' AND m.epoch IS NOT NULL
               AND m.name IN ('images_per_sec', 'epoch_seconds', 'torch_threads')
             ORDER BY m.run_id, m.epoch",
        )?;
        let mut per_epoch: HashMap<(String, i64), EpochSpeed> = HashMap::new();
        for row in stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, f64>(3)?,
            ))
        })? {
            let (id, epoch, name, value) = row?;
            let e = per_epoch.entry((id, epoch)).or_insert(EpochSpeed {
                images_per_sec: f64::NAN,
                seconds: None,
                threads: None,
            });
            match name.as_str() {
                "images_per_sec" => e.images_per_sec = value,
                "epoch_seconds" => e.seconds = Some(value),
                _ => e.threads = Some(value as u32),
            }
        }
        let mut keys: Vec<(String, i64)> = per_epoch.keys().cloned().collect();
        keys.sort();
        for key in keys {
            let speed = per_epoch[&key];
            if let Some(&i) = index.get(&key.0) {
                if speed.images_per_sec.is_finite() && speed.images_per_sec > 0.0 {
                    out[i].epochs.push(speed);
                }
            }
        }
        out.retain(|r| !r.epochs.is_empty());
        Ok(out)
    }
}
