//! Live updates: one thread polls the registry's change token and publishes it; each page's
//! event stream sends the token whenever it moves, and the page (static/live.js) refetches
//! itself when the token differs from the one it was rendered with.
//!
//! One poll per interval for the whole server, whatever the number of open pages, and each poll
//! is one constant-time read: the workers never notice.

use std::convert::Infallible;
use std::path::PathBuf;
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
    registry.change_token().unwrap_or_else(|_| NO_REGISTRY.into())
}

/// Starts the polling thread; it ends when `running` turns false or nobody listens any more.
pub fn watch(path: PathBuf, running: Arc<AtomicBool>) -> Result<watch::Receiver<String>> {
    let (tx, rx) = watch::channel(NO_REGISTRY.to_owned());
    std::thread::Builder::new()
        .name("pixelx-serve-watch".into())
        .spawn(move || {
            let mut conn: Option<Registry> = None;
            while running.load(Ordering::Relaxed) && !tx.is_closed() {
                if conn.is_none() {
                    conn = Registry::open_read_only(&path).ok();
                }
                let token = match conn.as_ref().map(|r| r.change_token()) {
                    Some(Ok(t)) => t,
                    Some(Err(e)) => {
                        // Reopen next time: the file may have been replaced.
                        tracing::debug!("dashboard: reading the change token: {e:#}");
                        conn = None;
                        NO_REGISTRY.to_owned()
                    }
                    None => NO_REGISTRY.to_owned(),
                };
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
