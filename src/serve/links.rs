//! The dashboard's URLs, in one place: what its pages link to and the routes that answer
//! (`routes.rs`) agree here.

use crate::report::markup::{url_segment, Links};
use crate::report::safe_run_id;

/// The link-maker the dashboard renders the report's views with.
pub struct Dashboard;

impl Links for Dashboard {
    fn run(&self, id: &str) -> Option<String> {
        safe_run_id(id).then(|| format!("/runs/{}", url_segment(id)))
    }

    fn experiment(&self, name: &str) -> Option<String> {
        Some(experiment_href(name))
    }

    fn sample(&self, run_id: &str, epoch: u32) -> Option<String> {
        safe_run_id(run_id).then(|| format!("/img/{run_id}/{epoch}"))
    }

    fn table_page(&self, experiment: &str, sort: &str, descending: bool, page: usize) -> Option<String> {
        let name = url_segment(experiment);
        Some(format!(
            "/experiments/{name}?sort={}&desc={}&page={}#runs-{name}",
            url_segment(sort),
            u8::from(descending),
            page + 1,
        ))
    }
}

/// The dashboard's link to an experiment's page. A name that is a dot segment (`.`, `..`) goes
/// in the query: in a path, browsers fold it away even percent-encoded (`/experiments/%2E%2E`
/// is `/` by the WHATWG URL standard).
pub fn experiment_href(name: &str) -> String {
    if name == "." || name == ".." {
        format!("/experiments?name={}", url_segment(name))
    } else {
        format!("/experiments/{}", url_segment(name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_segments_go_in_the_query_and_other_names_in_the_path() {
        assert_eq!(experiment_href(".."), "/experiments?name=%2E%2E");
        assert_eq!(experiment_href("a.b"), "/experiments/a%2Eb");
        assert_eq!(Dashboard.run("../x"), None);
        assert_eq!(Dashboard.run("abc123").as_deref(), Some("/runs/abc123"));
        assert_eq!(
            Dashboard.table_page("a b", "bpd8", true, 1).as_deref(),
            Some("/experiments/a%20b?sort=bpd8&desc=1&page=2#runs-a%20b")
        );
    }
}
