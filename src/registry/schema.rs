//! The registry's schema, as an ordered list of migrations. `PRAGMA user_version` records how
//! many have been applied; a new version appends a migration and never edits an old one.

pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE experiments (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    dataset     TEXT,
    file        TEXT,
    created_at  TEXT NOT NULL
);
CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    config_json   TEXT NOT NULL,
    config_hash   TEXT NOT NULL,
    status        TEXT NOT NULL CHECK (status IN
                    ('queued', 'running', 'completed', 'failed', 'diverged', 'interrupted')),
    run_dir       TEXT NOT NULL,
    device        TEXT,
    host          TEXT,
    pid           INTEGER,
    attempts      INTEGER NOT NULL DEFAULT 0,
    heartbeat_at  TEXT,
    created_at    TEXT NOT NULL,
    started_at    TEXT,
    finished_at   TEXT,
    error         TEXT
);
CREATE INDEX runs_by_experiment ON runs(experiment_id, status);
CREATE TABLE params (
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    value_text TEXT NOT NULL,
    value_num  REAL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX params_by_value ON params(key, value_text);
CREATE TABLE metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    step   INTEGER NOT NULL,
    epoch  INTEGER,
    value  REAL NOT NULL
);
CREATE INDEX metrics_by_run ON metrics(run_id, name, step);
CREATE TABLE checkpoints (
    id         INTEGER PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    sha256     TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    is_best    INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL
);
CREATE TABLE samples (
    id         INTEGER PRIMARY KEY,
    run_id     TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    path       TEXT NOT NULL,
    epoch      INTEGER NOT NULL,
    labels     TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE run_events (
    id     INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    status TEXT NOT NULL,
    at     TEXT NOT NULL,
    detail TEXT
);
"#,
    // Workers write journals that the coordinator ingests; runs can be pruned; adaptive searches
    // number their trials; running runs show their progress; Slurm runs keep their job id. The runs
    // table is rebuilt because SQLite cannot change a CHECK constraint in place (foreign keys are
    // off while a migration runs, so the rows that refer to runs stay).
    r#"
CREATE TABLE runs_new (
    id              TEXT PRIMARY KEY,
    experiment_id   INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
    config_json     TEXT NOT NULL,
    config_hash     TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN
                      ('queued', 'running', 'completed', 'failed', 'diverged', 'interrupted', 'pruned')),
    run_dir         TEXT NOT NULL,
    device          TEXT,
    host            TEXT,
    pid             INTEGER,
    attempts        INTEGER NOT NULL DEFAULT 0,
    heartbeat_at    TEXT,
    created_at      TEXT NOT NULL,
    started_at      TEXT,
    finished_at     TEXT,
    error           TEXT,
    journal_offset  INTEGER NOT NULL DEFAULT 0,
    job_id          TEXT,
    trial           INTEGER,
    epoch           INTEGER,
    step_in_epoch   INTEGER,
    steps_per_epoch INTEGER,
    images_per_sec  REAL,
    progress_at     TEXT
);
INSERT INTO runs_new (id, experiment_id, config_json, config_hash, status, run_dir, device, host, pid,
                      attempts, heartbeat_at, created_at, started_at, finished_at, error)
    SELECT id, experiment_id, config_json, config_hash, status, run_dir, device, host, pid,
           attempts, heartbeat_at, created_at, started_at, finished_at, error FROM runs;
DROP TABLE runs;
ALTER TABLE runs_new RENAME TO runs;
CREATE INDEX runs_by_experiment ON runs(experiment_id, status);
ALTER TABLE experiments ADD COLUMN search_method TEXT NOT NULL DEFAULT 'grid';
CREATE INDEX checkpoints_by_run ON checkpoints(run_id);
CREATE INDEX samples_by_run ON samples(run_id);
CREATE INDEX events_by_run ON run_events(run_id);
"#,
    // v3: the search method that proposed each run (the experiment's method may change between
    // re-runs of a file; a trial keeps the one that proposed it). Older runs take their
    // experiment's current method, the best knowledge there is.
    r#"
ALTER TABLE runs ADD COLUMN method TEXT;
UPDATE runs SET method = (SELECT search_method FROM experiments e WHERE e.id = runs.experiment_id);
"#,
    // v4: what `pixelx sync mlflow` has sent to each tracking server, so a second sync sends only
    // what is new and an interrupted one continues. `server` is the tracking URI without
    // credentials; `run_id` is a pixelx run, or '' for an experiment's row; `item` names what was
    // sent (`run`, `params`, `tags`, `status`, `metric:<name>`, `artifact:<path>`,
    // `experiment:<name>`) and `value` what the server has of it (its id, the last step, a hash).
    r#"
CREATE TABLE mlflow_sync (
    server  TEXT NOT NULL,
    run_id  TEXT NOT NULL,
    item    TEXT NOT NULL,
    value   TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    PRIMARY KEY (server, run_id, item)
);
"#,
    // v5: a (run, metric, step) is recorded once. A journal line torn by a kill could make a
    // resumed run's steps be recorded a second time; the copies that exist are removed first,
    // keeping the one recorded last (the value the run's final attempt measured), and the index
    // becomes unique so that ingestion replaces instead of adding.
    r#"
DELETE FROM metrics WHERE rowid NOT IN (SELECT MAX(rowid) FROM metrics GROUP BY run_id, name, step);
DROP INDEX IF EXISTS metrics_by_run;
CREATE UNIQUE INDEX metrics_by_run ON metrics(run_id, name, step);
"#,
    // v6: per-run results kept up to date at ingestion (best epoch, speed, wall time and the
    // per-epoch curves), so that reports and the dashboard read one small row per run instead of
    // scanning every metric row; an index for the epoch rows of one run, which is how ingestion
    // refreshes them. Existing registries are backfilled by `Registry::migrate` (the SQL alone
    // cannot build the curves).
    r#"
CREATE TABLE run_results (
    run_id         TEXT PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    best_epoch     INTEGER,
    best_bpd8      REAL,
    best_bpd       REAL,
    best_nll       REAL,
    images_per_sec REAL,
    wall_seconds   REAL,
    curves         TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX run_results_by_bpd8 ON run_results(best_bpd8);
CREATE INDEX metrics_by_epoch ON metrics(run_id, epoch) WHERE epoch IS NOT NULL;
"#,
    // v7: a results row names its run's experiment, and an index holds each experiment's runs
    // in rank order (best bpd8, then bpd with a missing one last, then id), so that the views of
    // a large experiment count, rank and page its runs from the index alone, never reading the
    // wide rows of `runs` or `run_results` (see `registry::ranking`). Ingestion keeps the column.
    r#"
ALTER TABLE run_results ADD COLUMN experiment_id INTEGER;
UPDATE run_results SET experiment_id = (SELECT experiment_id FROM runs WHERE runs.id = run_results.run_id);
CREATE INDEX run_results_by_rank
    ON run_results(experiment_id, best_bpd8, best_bpd IS NULL, best_bpd, run_id);
"#,
    // v8: a results row written without its experiment (by a pixelx of schema v6 still running
    // a sweep on a migrated file, or any other tool) is given it by a trigger, so that no run
    // is counted in an experiment yet missing from its rank index; rows left so before are
    // filled first.
    r#"
UPDATE run_results SET experiment_id = (SELECT experiment_id FROM runs WHERE runs.id = run_results.run_id)
    WHERE experiment_id IS NULL;
CREATE TRIGGER run_results_experiment AFTER INSERT ON run_results WHEN NEW.experiment_id IS NULL
BEGIN
    UPDATE run_results SET experiment_id = (SELECT experiment_id FROM runs WHERE id = NEW.run_id)
        WHERE run_id = NEW.run_id;
END;
"#,
    // v9: the precision a run really trained in (`precision = "auto"` resolves per device when
    // the run starts; its `started` event says to what). Runs that started before v9 used their
    // config's precision, fp32 when the config predates the key; runs yet to start have none.
    r#"
ALTER TABLE runs ADD COLUMN precision TEXT;
UPDATE runs SET precision = COALESCE(json_extract(config_json, '$.precision'), 'fp32')
    WHERE started_at IS NOT NULL;
"#,
];

/// The migration that creates `run_results`, whose rows `Registry::migrate` backfills from the
/// metrics: found by its text, so that it stays right when migrations are renumbered.
pub fn results_migration() -> usize {
    MIGRATIONS
        .iter()
        .position(|m| m.contains("CREATE TABLE run_results"))
        .expect("the run_results migration is in the list")
}

#[cfg(test)]
mod tests {
    /// The notebook package (`python/pixelx/schema.py`) declares the schema version it reads;
    /// it must be the one a registry this pixelx writes has, so a new migration is checked there.
    #[test]
    fn the_python_package_reads_the_current_schema_version() {
        let source = include_str!("../../python/pixelx/schema.py");
        let declared: i64 = source
            .lines()
            .find_map(|l| l.strip_prefix("SCHEMA_VERSION = "))
            .expect("python/pixelx/schema.py has a `SCHEMA_VERSION = N` line")
            .trim()
            .parse()
            .expect("SCHEMA_VERSION is a whole number");
        let dir = tempfile::tempdir().unwrap();
        let written = crate::registry::Registry::open(&dir.path().join("registry.sqlite"))
            .unwrap()
            .schema_version()
            .unwrap();
        assert_eq!(written, super::MIGRATIONS.len() as i64);
        assert_eq!(
            declared, written,
            "python/pixelx/schema.py reads schema version {declared}, the registry is at {written}: \
             check the package against the new migration and update its SCHEMA_VERSION"
        );
    }
}
