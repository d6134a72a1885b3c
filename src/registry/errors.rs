//! SQLite errors in words: which registry, and the likely cause.

use std::path::Path;

use rusqlite::ErrorCode;

/// Adds the registry's path and the likely cause to an error that came from SQLite.
pub fn explain(e: anyhow::Error, path: &Path) -> anyhow::Error {
    let Some(code) = e
        .chain()
        .find_map(|c| c.downcast_ref::<rusqlite::Error>())
        .and_then(|s| s.sqlite_error_code())
    else {
        return e;
    };
    let cause = match code {
        ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
            "it is not a pixelx registry or is corrupt (restore it from a backup, or use another --registry)"
        }
        ErrorCode::DiskFull => "the disk is full",
        ErrorCode::ReadOnly => "it is read-only here (its file, folder or filesystem)",
        ErrorCode::CannotOpen => "it cannot be opened (a missing folder, or no permission)",
        ErrorCode::PermissionDenied => "permission denied",
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
            "another process held it locked for over a minute"
        }
        ErrorCode::SystemIoFailure => "an I/O error (a full or failing disk, or a network filesystem)",
        _ => return e.context(format!("registry {}", path.display())),
    };
    e.context(format!("registry {}: {cause}", path.display()))
}
