//! The dashboard's own pages around the report's views: the live shell every page is wrapped
//! in (`templates/serve/shell.html`) and the front and experiment pages
//! (`templates/serve/index.html`).

use anyhow::Result;
use askama::Template;

use super::links::experiment_href;
use crate::registry::views::ExperimentRow;
use crate::report::html::page;

/// The dashboard's update script, as the pages load it (served by `routes.rs`).
pub const LIVE_JS_PATH: &str = "/static/live.js";

#[derive(Template)]
#[template(path = "serve/shell.html")]
struct Shell<'a> {
    token: &'a str,
    body: &'a str,
}

/// A whole dashboard page: header, and the `#live` part that live.js swaps when the token
/// moves (`live_body` is HTML rendered by another template).
pub fn shell(title: &str, token: &str, live_body: &str) -> Result<String> {
    let body = Shell {
        token,
        body: live_body,
    }
    .render()?;
    page(title, &body, Some(LIVE_JS_PATH))
}

/// A row of the experiments table.
struct Experiment<'a> {
    name: &'a str,
    href: String,
    runs: i64,
    dataset: &'a str,
    description: &'a str,
    /// The experiment the page shows.
    chosen: bool,
}

#[derive(Template)]
#[template(path = "serve/index.html")]
struct Index<'a> {
    experiments: Vec<Experiment<'a>>,
    /// The chosen experiment, when it has no runs yet.
    no_runs_yet: Option<&'a str>,
    /// The chosen experiment's views, rendered.
    sections: Vec<String>,
}

/// The experiments (the chosen one highlighted), then the chosen one's `sections`.
pub fn index(
    experiments: &[ExperimentRow],
    chosen: Option<&str>,
    no_runs_yet: bool,
    sections: Vec<String>,
) -> Result<String> {
    let experiments = experiments
        .iter()
        .map(|e| Experiment {
            name: &e.name,
            href: experiment_href(&e.name),
            runs: e.runs,
            dataset: e.dataset.as_deref().unwrap_or(""),
            description: &e.description,
            chosen: Some(e.name.as_str()) == chosen,
        })
        .collect();
    let index = Index {
        experiments,
        no_runs_yet: chosen.filter(|_| no_runs_yet),
        sections,
    };
    Ok(index.render()?)
}

#[derive(Template)]
#[template(
    source = "<p>{{ message }}. This page updates when it appears.</p>",
    ext = "html"
)]
struct Missing<'a> {
    message: &'a str,
}

/// The body shown while the registry does not exist yet.
pub fn missing_registry(message: &str) -> Result<String> {
    Ok(Missing { message }.render()?)
}
