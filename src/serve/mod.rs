//! `pixelx serve`: a local, read-only web dashboard over the registry, with the report's views
//! updating live while a sweep runs.
//!
//! - Read-only: every request opens the registry with [`Registry::open_read_only`] (read-only flags,
//!   `query_only`), and each query is its own short read transaction, so workers writing in WAL
//!   mode are never blocked or slowed.
//! - Live: one watcher thread polls the registry's change token ([`live`]) and pushes it to the
//!   pages over server-sent events; a page refetches itself when the token moves.
//! - Safe: files served are only sample grids that the registry names, at paths built from a
//!   validated run id and an integer epoch ([`crate::run_dir::RunDir::epoch_samples`]); no path
//!   comes from a request. Pages are the report's templates (`templates/`), which escape every
//!   value they print; they carry a CSP that allows no inline script.
//!
//! [`Registry::open_read_only`]: crate::registry::Registry::open_read_only

mod guard;
mod links;
mod live;
mod pages;
mod routes;
mod run_page;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::{Context, Result};

/// What to serve, and where.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub registry: PathBuf,
    pub runs_dir: PathBuf,
    /// Address to listen on; port 0 picks a free one (see [`Server::addr`]).
    pub addr: SocketAddr,
    /// The experiment the front page shows (default: the one with the newest run).
    pub experiment: Option<String>,
}

/// A running dashboard on its own thread.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    watching: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<()>>>,
}

impl Server {
    /// Binds `opts.addr` (failing here if it is taken) and serves on a background thread.
    pub fn start(opts: ServeOptions) -> Result<Self> {
        let listener =
            std::net::TcpListener::bind(opts.addr).with_context(|| format!("listening on {}", opts.addr))?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let watching = Arc::new(AtomicBool::new(true));
        let token = live::watch(opts.registry.clone(), watching.clone())?;
        let state = Arc::new(routes::AppState::new(opts, addr, token));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("pixelx-serve".into())
            .spawn(move || -> Result<()> {
                // One thread for the async side; registry reads go to tokio's blocking pool.
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                    .context("starting the dashboard's runtime")?;
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    let app = routes::router(state);
                    tokio::select! {
                        served = axum::serve(listener, app) => served.context("serving the dashboard"),
                        _ = stopped => Ok(()),
                    }
                })
            })
            .context("starting the dashboard thread")?;
        Ok(Self {
            addr,
            stop: Some(stop),
            watching,
            thread: Some(thread),
        })
    }

    /// Serves until the process is stopped (or the server fails).
    pub fn wait(mut self) -> Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the dashboard thread panicked"))?,
            None => Ok(()),
        }
    }

    /// Stops serving (open connections, live streams included, are dropped).
    pub fn stop(mut self) -> Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<()> {
        self.watching.store(false, Ordering::Relaxed);
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow::anyhow!("the dashboard thread panicked"))?,
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}
