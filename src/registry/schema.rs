//! The registry's schema, as an ordered list of migrations. `PRAGMA user_version` records how
//! many have been applied; a new version appends a migration and never edits an old one.

pub const MIGRATIONS: &[&str] = &[r#"
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
"#];
