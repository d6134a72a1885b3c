//! The dashboard's routes. Pages are the report's views (crate::report) linked instead of
//! embedded; every handler reads the registry on tokio's blocking pool through a fresh
//! read-only connection, and rendered pages are cached per registry change token, so any number
//! of open pages refreshing at once costs one render.
//!
//! | route | answers |
//! |---|---|
//! | `/` | experiments, and the chosen (or newest) experiment's views |
//! | `/experiments/<name>` | one experiment's views (404 for names the registry lacks); `?sort=`, `desc=`, `page=` order and page the runs table of a large one |
//! | `/experiments?name=<name>` | the same, for names a browser folds in a path (`.`, `..`) |
//! | `/runs/<id>` | one run in full (400 for a malformed id, 404 for an unknown one) |
//! | `/img/<id>/<epoch>` | a sample grid the registry records for that run and epoch |
//! | `/events` | server-sent change tokens |
//! | `/static/live.js` | the page's update script |

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{middleware, Router};
use tokio::sync::watch;

use super::links::Dashboard;
use super::{guard, live, pages, run_page, ServeOptions};
use crate::registry::Registry;
use crate::report::html::{experiment_section_paged, TablePage};
use crate::report::{safe_run_id, scaled, views};
use crate::run_dir::RunDir;

const LIVE_JS: &str = include_str!("live.js");

/// Cached pages kept at most; past it the cache starts over.
const CACHE_PAGES: usize = 64;

pub struct AppState {
    registry: PathBuf,
    runs_dir: PathBuf,
    experiment: Option<String>,
    /// The Host values answered (see [`guard::check`]).
    hosts: Arc<Option<Vec<String>>>,
    token: watch::Receiver<String>,
    /// Rendered pages by route, with the change token they were rendered at.
    cache: Mutex<HashMap<String, (String, Arc<String>)>>,
}

impl AppState {
    pub fn new(opts: ServeOptions, addr: SocketAddr, token: watch::Receiver<String>) -> Self {
        Self {
            registry: opts.registry,
            runs_dir: opts.runs_dir,
            experiment: opts.experiment,
            hosts: Arc::new(guard::allowed_hosts(addr)),
            token,
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, key: &str, token: &str) -> Option<Arc<String>> {
        let cache = self.cache.lock().ok()?;
        cache
            .get(key)
            .filter(|(t, _)| t == token)
            .map(|(_, page)| page.clone())
    }

    fn store(&self, key: String, token: String, page: Arc<String>) {
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= CACHE_PAGES {
                cache.clear();
            }
            cache.insert(key, (token, page));
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("not found")]
    NotFound,
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::NotFound => guard::error(StatusCode::NOT_FOUND, "not found"),
            AppError::BadRequest(why) => guard::error(StatusCode::BAD_REQUEST, why),
            AppError::Internal(e) => {
                tracing::error!("dashboard: {e:#}");
                guard::error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal error (see the server's log)",
                )
            }
        }
    }
}

type Reply = Result<Response, AppError>;

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/experiments", get(experiment_by_query))
        .route("/experiments/{name}", get(experiment))
        .route("/runs/{id}", get(run))
        .route("/img/{id}/{epoch}", get(image))
        .route("/events", get(events))
        .route(pages::LIVE_JS_PATH, get(script))
        .fallback(|| async { AppError::NotFound })
        .layer(middleware::from_fn_with_state(state.hosts.clone(), guard::check))
        .with_state(state)
}

/// Runs `f` on the blocking pool: SQLite reads and file reads must not stall the event loop.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, AppError> + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("dashboard task: {e}")))?
}

fn html(page: Arc<String>) -> Response {
    Html(page.as_str().to_owned()).into_response()
}

async fn index(State(st): State<Arc<AppState>>, RawQuery(query): RawQuery) -> Reply {
    let page = table_page(query.as_deref())?;
    experiment_page(st, None, page).await
}

async fn experiment(
    State(st): State<Arc<AppState>>,
    Path(name): Path<String>,
    RawQuery(query): RawQuery,
) -> Reply {
    let page = table_page(query.as_deref())?;
    experiment_page(st, Some(name), page).await
}

async fn experiment_by_query(State(st): State<Arc<AppState>>, uri: Uri) -> Reply {
    let name = uri
        .query()
        .and_then(|q| q.split('&').find_map(|p| p.strip_prefix("name=")))
        .and_then(percent_decode)
        .ok_or(AppError::BadRequest("expected /experiments?name=EXPERIMENT"))?;
    let page = table_page(uri.query())?;
    experiment_page(st, Some(name), page).await
}

/// Decodes a percent-encoded query value (`+` is a space); `None` for a malformed one.
fn percent_decode(s: &str) -> Option<String> {
    // The crate passes a malformed escape (`%ZZ`) through as it is; such a name is refused.
    let malformed = s.match_indices('%').any(|(i, _)| {
        !s.get(i + 1..i + 3)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if malformed {
        return None;
    }
    let spaced = s.replace('+', " ");
    percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// The runs table's order and page from `?sort=KEY&desc=0|1&page=N` (1-based); absent
/// parameters keep their default (best first, first page).
fn table_page(query: Option<&str>) -> Result<TablePage, AppError> {
    let mut page = TablePage::default();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            // Column names are plain identifiers: nothing to decode, nothing else accepted.
            "sort" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') => {
                page.sort = value.to_owned();
            }
            "sort" => return Err(AppError::BadRequest("sort must name a column")),
            "desc" => page.descending = value == "1",
            "page" => {
                let n: usize = value
                    .parse()
                    .map_err(|_| AppError::BadRequest("page must be a number from 1"))?;
                page.page = n.saturating_sub(1);
            }
            _ => {}
        }
    }
    Ok(page)
}

async fn experiment_page(st: Arc<AppState>, name: Option<String>, table: TablePage) -> Reply {
    let page = blocking(move || {
        let registry = match Registry::open_read_only(&st.registry) {
            Ok(r) => r,
            Err(e) if !st.registry.exists() => {
                let body = pages::missing_registry(&format!("{e:#}"))?;
                return Ok(Arc::new(pages::shell(
                    "pixelx dashboard",
                    live::NO_REGISTRY,
                    &body,
                )?));
            }
            Err(e) => return Err(e.into()),
        };
        let token = live::current_token(&registry);
        let key = format!(
            "experiment:{}?{}:{}:{}",
            name.as_deref().unwrap_or(""),
            table.sort,
            table.descending,
            table.page
        );
        if let Some(page) = st.cached(&key, &token) {
            return Ok(page);
        }
        let page = Arc::new(render_experiment_page(&st, &registry, name, &table, &token)?);
        st.store(key, token, page.clone());
        Ok(page)
    })
    .await?;
    Ok(html(page))
}

/// The experiments, and the views of the one named (or the default one).
fn render_experiment_page(
    st: &AppState,
    registry: &Registry,
    name: Option<String>,
    table: &TablePage,
    token: &str,
) -> Result<String, AppError> {
    let experiments = registry.experiments()?;
    let chosen = match name {
        Some(n) if experiments.iter().any(|e| e.name == n) => Some(n),
        Some(_) => return Err(AppError::NotFound),
        None => match &st.experiment {
            Some(e) => Some(e.clone()),
            None => registry.latest_experiment()?,
        },
    };
    // A key that is no column at all is refused before any run is read; a parameter the
    // experiment does not sweep, once its view says so.
    if !TablePage::maybe_sort(&table.sort) {
        return Err(AppError::BadRequest("unknown sort column"));
    }
    let mut sections = Vec::new();
    let mut no_runs_yet = false;
    if let Some(exp) = &chosen {
        let description = experiments
            .iter()
            .find(|e| &e.name == exp)
            .map_or("", |e| e.description.as_str());
        // Counted, ranked and paged in SQL past 50 runs: only the runs shown are read.
        let rows = scaled::TableRows::Page(table);
        match scaled::experiment(registry, exp, description, rows, views::loss_points)? {
            Some(view) => {
                if !TablePage::valid_sort(&view, &table.sort) {
                    return Err(AppError::BadRequest("unknown sort column"));
                }
                sections.push(experiment_section_paged(&view, 0, &Dashboard, Some(table))?);
            }
            None => no_runs_yet = true,
        }
    }
    let body = pages::index(&experiments, chosen.as_deref(), no_runs_yet, sections)?;
    let title = chosen.map_or("pixelx dashboard".into(), |e| format!("{e} · pixelx"));
    Ok(pages::shell(&title, token, &body)?)
}

async fn run(State(st): State<Arc<AppState>>, Path(id): Path<String>) -> Reply {
    if !safe_run_id(&id) {
        return Err(AppError::BadRequest("malformed run id"));
    }
    let page = blocking(move || {
        let registry = Registry::open_read_only(&st.registry).map_err(|_| AppError::NotFound)?;
        let token = live::current_token(&registry);
        let key = format!("run:{id}");
        if let Some(page) = st.cached(&key, &token) {
            return Ok(page);
        }
        let data = run_page::build(&registry, &id, &st.runs_dir)?.ok_or(AppError::NotFound)?;
        let page = Arc::new(pages::shell(
            &format!("run {id} · pixelx"),
            &token,
            &run_page::render(&data)?,
        )?);
        st.store(key, token, page.clone());
        Ok(page)
    })
    .await?;
    Ok(html(page))
}

async fn image(State(st): State<Arc<AppState>>, Path((id, epoch)): Path<(String, String)>) -> Reply {
    if !safe_run_id(&id) {
        return Err(AppError::BadRequest("malformed run id"));
    }
    let epoch: u32 = epoch
        .parse()
        .map_err(|_| AppError::BadRequest("epoch must be a number"))?;
    let bytes = blocking(move || {
        let registry = Registry::open_read_only(&st.registry).map_err(|_| AppError::NotFound)?;
        // Only what the registry names: a known run, an epoch it recorded samples for.
        if !registry.run_exists(&id)? || !registry.has_samples(&id, epoch)? {
            return Err(AppError::NotFound);
        }
        let path = RunDir::new(&st.runs_dir, &id).epoch_samples(epoch);
        std::fs::read(&path).map_err(|_| AppError::NotFound)
    })
    .await?;
    let mut res = bytes.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    // A forced re-run rewrites an epoch's grid, so browsers revalidate rather than keep it.
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(res)
}

async fn events(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    live::events(st.token.clone())
}

async fn script() -> Response {
    let mut res = LIVE_JS.into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/javascript; charset=utf-8"),
    );
    res
}
