//! Live updates: one thread polls the registry's change token and publishes it; each page's
//! event stream sends the token whenever it moves, and the page (static/live.js) refetches
//! itself when the token differs from the one it was rendered with.
//!
//! One poll per interval for the whole server, whatever the number of open pages, and each poll
//! is one constant-time read: the workers never notice.
//!
//! A token names the registry file it was read from (its device and inode) as well as its
//! contents: a file replaced (a restored backup), deleted or created again is another registry,
//! and an open connection would go on reading the old inode forever. The watcher reopens
//! whenever the file at the path is not the one it holds.

use std::convert::Infallible;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::Stream;
use tokio::sync::watch;

use crate::registry::Registry;

const POLL: Duration = Duration::from_millis(500);

/// The token of a registry that cannot be read (yet): a sweep may not have created it.
pub const NO_REGISTRY: &str = "none";

/// The registry's current change token, or [`NO_REGISTRY`].
pub fn current_token(registry: &Registry) -> String {
    match (file_id(&registry.path), registry.change_token()) {
        (Some(id), Ok(token)) => tagged(id, &token),
        _ => NO_REGISTRY.into(),
    }
}

/// The identity of the file at `path` (device, inode); `None` when there is none.
fn file_id(path: &Path) -> Option<(u64, u64)> {
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

fn tagged((dev, ino): (u64, u64), token: &str) -> String {
    format!("{dev:x}-{ino:x}.{token}")
}

/// Starts the polling thread; it ends when `running` turns false or nobody listens any more.
pub fn watch(path: PathBuf, running: Arc<AtomicBool>) -> Result<watch::Receiver<String>> {
    let (tx, rx) = watch::channel(NO_REGISTRY.to_owned());
    std::thread::Builder::new()
        .name("pixelx-serve-watch".into())
        .spawn(move || {
            // The open registry and the file it was opened from.
            let mut conn: Option<(Registry, (u64, u64))> = None;
            while running.load(Ordering::Relaxed) && !tx.is_closed() {
                let token = poll(&path, &mut conn);
                tx.send_if_modified(|t| {
                    if *t == token {
                        false
                    } else {
                        *t = token;
                        true
                    }
                });
                std::thread::sleep(POLL);
            }
        })
        .context("starting the dashboard's registry watcher")?;
    Ok(rx)
}

/// One poll: reopens `conn` when the file at `path` is another one (or gone), then reads.
fn poll(path: &Path, conn: &mut Option<(Registry, (u64, u64))>) -> String {
    let Some(now) = file_id(path) else {
        *conn = None;
        return NO_REGISTRY.to_owned();
    };
    if conn.as_ref().is_some_and(|(_, id)| *id != now) {
        *conn = None;
    }
    if conn.is_none() {
        // Identified before opening: a file swapped in between shows as a change next poll.
        *conn = Registry::open_read_only(path).ok().map(|r| (r, now));
    }
    let Some((registry, id)) = conn.as_ref() else {
        return NO_REGISTRY.to_owned();
    };
    match registry.change_token() {
        Ok(token) => tagged(*id, &token),
        Err(e) => {
            tracing::debug!("dashboard: reading the change token: {e:#}");
            *conn = None;
            NO_REGISTRY.to_owned()
        }
    }
}

/// `GET /events`: the current token at once, then each new one.
pub fn events(mut rx: watch::Receiver<String>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let first = rx.borrow_and_update().clone();
    let stream = futures_util::stream::unfold((rx, Some(first)), |(mut rx, first)| async move {
        let token = match first {
            Some(t) => t,
            None => {
                rx.changed().await.ok()?;
                rx.borrow_and_update().clone()
            }
        };
        Some((Ok(Event::default().event("change").data(token)), (rx, None)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
