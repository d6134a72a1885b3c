//! `pixelx serve`: the live dashboard over the registry.

use std::io::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::Result;
use clap::Args;

use super::Cli;
use crate::registry::Registry;
use crate::serve::{ServeOptions, Server};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Port to listen on (0: any free port; the address is printed either way).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on. The default serves this machine only; another address exposes the
    /// (read-only) dashboard to whoever can reach it.
    #[arg(long, default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub bind: IpAddr,
    /// The experiment the front page shows (default: the one with the newest run).
    #[arg(long)]
    pub experiment: Option<String>,
}

pub fn serve(cli: &Cli, args: &ServeArgs) -> Result<()> {
    // Drawing a page of hundreds of runs takes a fraction of a second of CPU; at a lower
    // priority it takes it from idle time, not from workers training on the same cores.
    // SAFETY: nice(2) only changes this process's scheduling priority.
    unsafe {
        libc::nice(10);
    }
    let path = cli.registry_path();
    // A missing registry is fine (a sweep may create it; the pages say so and update), but a
    // file that is there must be one this pixelx reads: otherwise every page would answer 500.
    if path.exists() {
        let registry = Registry::open_read_only(&path)?;
        if let Some(name) = &args.experiment {
            if !registry.experiments()?.iter().any(|e| &e.name == name) {
                tracing::warn!(
                    "no experiment `{name}` in {} (yet); the front page shows it once it has runs",
                    path.display()
                );
            }
        }
    }
    let server = Server::start(ServeOptions {
        registry: path,
        runs_dir: cli.runs_dir.clone(),
        addr: SocketAddr::new(args.bind, args.port),
        experiment: args.experiment.clone(),
    })?;
    // On stdout, first line, so that scripts (and the tests) can read the port back.
    println!("pixelx dashboard on http://{}/", server.addr);
    std::io::stdout().flush()?;
    server.wait()
}
