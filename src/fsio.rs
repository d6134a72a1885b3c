//! Writing files without losing what was there: atomic replacement, checksums, and the check
//! that a user-named output is not the registry, a run folder or a special file.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Writes bytes to `path` via `path.tmp`, fsync and rename, so a crash leaves either the old file
/// or the complete new one.
pub fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("writing {}", path.display()));
    }
    if let Some(dir) = path.parent().and_then(|d| std::fs::File::open(d).ok()) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// SHA-256 of some bytes, hex-encoded.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Largest experiment file (or other small text file pixelx reads whole) accepted: far above any
/// real one, far below what would exhaust memory.
pub const MAX_TEXT_FILE: u64 = 16 << 20;

/// Checks that `path` (after symlinks) is a regular file, and, with `max`, that it holds at
/// most `max` bytes. Asked before opening: opening a FIFO blocks until a writer comes, and a
/// device such as `/dev/zero` never ends. `what` names the file in the message ("experiment
/// file", "weight file"). Returns its size.
pub fn check_regular_file(path: &Path, what: &str, max: Option<u64>) -> Result<u64> {
    let meta = std::fs::metadata(path).with_context(|| format!("reading {what} {}", path.display()))?;
    let kind = meta.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt;
        let is = if kind.is_dir() {
            "a folder"
        } else if kind.is_fifo() {
            "a FIFO (named pipe)"
        } else if kind.is_char_device() || kind.is_block_device() {
            "a device"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "not a plain file"
        };
        bail!(
            "{what} {} is not a regular file (it is {is}); give the path of a file",
            path.display()
        );
    }
    if let Some(max) = max.filter(|&max| meta.len() > max) {
        bail!(
            "{what} {} is {:.1} MiB, more than the {} MiB a {what} may be; is it the right file?",
            path.display(),
            meta.len() as f64 / f64::from(1 << 20),
            max >> 20
        );
    }
    Ok(meta.len())
}

/// Reads a small text file whole, after [`check_regular_file`] with [`MAX_TEXT_FILE`]. At most
/// the limit is read even if the file grows meanwhile.
pub fn read_text_file(path: &Path, what: &str) -> Result<String> {
    use std::io::Read;
    check_regular_file(path, what, Some(MAX_TEXT_FILE))?;
    let mut text = String::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_TEXT_FILE + 1).read_to_string(&mut text))
        .with_context(|| format!("reading {what} {}", path.display()))?;
    if text.len() as u64 > MAX_TEXT_FILE {
        bail!(
            "{what} {} grew past {} MiB while it was read",
            path.display(),
            MAX_TEXT_FILE >> 20
        );
    }
    Ok(text)
}

/// `create_dir_all` whose error says what is wrong when a symlink on the way loops (the OS says
/// `File exists` for a link that points at itself).
pub fn create_dir_all(dir: &Path) -> Result<()> {
    let Err(e) = std::fs::create_dir_all(dir) else {
        return Ok(());
    };
    let looping = std::fs::metadata(dir)
        .err()
        .is_some_and(|m| m.raw_os_error() == Some(libc::ELOOP));
    if looping {
        bail!(
            "creating {}: it is a symbolic link loop (a link that leads back to itself); \
             point it at a real folder or remove it",
            dir.display()
        );
    }
    Err(e).with_context(|| format!("creating {}", dir.display()))
}

/// What user-named outputs must never replace.
#[derive(Debug, Clone)]
pub struct Protected {
    pub registry: PathBuf,
    pub runs_dir: PathBuf,
}

/// `path` made absolute and free of `.` and `..`, resolving symlinks in the part that exists.
fn absolute(path: &Path) -> Result<PathBuf> {
    let path = if path.is_absolute() {
        path.to_owned()
    } else {
        std::env::current_dir()?.join(path)
    };
    // Canonicalise the longest existing ancestor, then append the rest lexically.
    let mut existing = path.clone();
    let mut rest = Vec::new();
    while !existing.exists() {
        match (existing.file_name(), existing.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name.to_owned());
                existing = parent.to_owned();
            }
            _ => break,
        }
    }
    let mut out = std::fs::canonicalize(&existing).unwrap_or(existing);
    for part in rest.iter().rev() {
        for c in Path::new(part).components() {
            match c {
                Component::ParentDir => {
                    out.pop();
                }
                Component::Normal(n) => out.push(n),
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Where an output the user named may be written. A symlink is followed (its target is
/// replaced and the link kept); an existing file must be a regular one (not a FIFO, device,
/// socket or folder); the registry, its companion files and anything inside a run folder are
/// refused. Returns the path to write.
pub fn check_output(path: &Path, protected: &Protected) -> Result<PathBuf> {
    let mut target = path.to_owned();
    for _ in 0..40 {
        match std::fs::symlink_metadata(&target) {
            Ok(m) if m.file_type().is_symlink() => {
                let link = std::fs::read_link(&target)?;
                target = match target.parent() {
                    Some(dir) if link.is_relative() => dir.join(link),
                    _ => link,
                };
            }
            _ => break,
        }
    }
    if let Ok(m) = std::fs::metadata(&target) {
        if !m.file_type().is_file() {
            bail!(
                "{} is not a regular file; give the path of a file to write",
                path.display()
            );
        }
    }
    let abs = absolute(&target)?;
    let registry = absolute(&protected.registry)?;
    let mut registry_files = vec![registry.clone()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = registry.clone().into_os_string();
        name.push(suffix);
        registry_files.push(PathBuf::from(name));
    }
    if registry_files.contains(&abs) {
        bail!(
            "refusing to write over the registry {}",
            protected.registry.display()
        );
    }
    let runs = absolute(&protected.runs_dir)?;
    if let Ok(inside) = abs.strip_prefix(&runs) {
        let mut parts = inside.components();
        if let (Some(run), Some(_)) = (parts.next(), parts.next()) {
            bail!(
                "refusing to write {} into the run folder {}: pixelx's own files live there",
                path.display(),
                runs.join(run).display()
            );
        }
    }
    Ok(target)
}

/// An exclusive lock on a file (`flock`), held until dropped. The file says who holds it, so
/// that whoever finds it taken can name the holder.
#[derive(Debug)]
pub struct FileLock {
    _file: std::fs::File,
}

impl FileLock {
    /// Takes the lock without waiting. `Ok(Err(holder))` when another process holds it, with
    /// what that process wrote (e.g. "pid 123 on host h since ...").
    pub fn try_acquire(path: &Path, holder: &str) -> Result<std::result::Result<Self, String>> {
        use std::os::unix::io::AsRawFd;
        if let Some(dir) = path.parent() {
            create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        // SAFETY: flock(2) on a descriptor this function owns; no memory is shared.
        let taken = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0;
        if taken {
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EWOULDBLOCK) {
                return Err(err).with_context(|| format!("locking {}", path.display()));
            }
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let text = text.trim();
            return Ok(Err(if text.is_empty() {
                "another process".to_owned()
            } else {
                text.to_owned()
            }));
        }
        file.set_len(0)?;
        file.write_all(holder.as_bytes())?;
        file.sync_data()?;
        Ok(Ok(Self { _file: file }))
    }
}

/// "pid N on host H since T": how this process names itself in a lock file.
pub fn this_process() -> String {
    format!(
        "pid {} on host {} since {}",
        std::process::id(),
        crate::host::hostname(),
        crate::host::now()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_beside_runs_are_fine_inside_a_run_or_onto_the_registry_are_not() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        std::fs::create_dir_all(runs.join("abc/checkpoints")).unwrap();
        let p = Protected {
            registry: runs.join("registry.sqlite"),
            runs_dir: runs.clone(),
        };
        assert!(check_output(&runs.join("report.html"), &p).is_ok());
        assert!(check_output(&dir.path().join("x/../y.png"), &p).is_ok());
        let e = check_output(&runs.join("abc/checkpoints/x.safetensors"), &p).unwrap_err();
        assert!(e.to_string().contains("run folder"), "{e}");
        let e = check_output(&runs.join("abc/../registry.sqlite-wal"), &p).unwrap_err();
        assert!(e.to_string().contains("registry"), "{e}");
        let e = check_output(&runs.join("abc"), &p).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }

    #[test]
    fn a_file_lock_is_exclusive_and_names_its_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        let held = FileLock::try_acquire(&path, "pid 1 on host h").unwrap().unwrap();
        // flock locks belong to open file descriptions, so a second open in this process is
        // refused just as another process would be.
        let again = FileLock::try_acquire(&path, "pid 2").unwrap();
        assert_eq!(again.unwrap_err(), "pid 1 on host h");
        drop(held);
        assert!(FileLock::try_acquire(&path, "pid 2").unwrap().is_ok());
    }
}
