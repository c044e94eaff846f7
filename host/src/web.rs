//! The web app (`host/web/`): plain HTML, CSS and ES modules over the REST API, embedded in the
//! binary and served at `/` and `/app/…` — no separate server or build step.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Path under `/app/`, content type, and the file.
const FILES: &[(&str, &str, &[u8])] = &[
    ("app.css", "text/css", include_bytes!("../web/app.css")),
    ("js/main.js", "text/javascript", include_bytes!("../web/js/main.js")),
    ("js/api.js", "text/javascript", include_bytes!("../web/js/api.js")),
    ("js/dom.js", "text/javascript", include_bytes!("../web/js/dom.js")),
    ("js/webhooks.js", "text/javascript", include_bytes!("../web/js/webhooks.js")),
    ("js/webhook-form.js", "text/javascript", include_bytes!("../web/js/webhook-form.js")),
    ("js/webhook-page.js", "text/javascript", include_bytes!("../web/js/webhook-page.js")),
    ("js/schema-form.js", "text/javascript", include_bytes!("../web/js/schema-form.js")),
    ("js/connectors.js", "text/javascript", include_bytes!("../web/js/connectors.js")),
    ("js/chart.js", "text/javascript", include_bytes!("../web/js/chart.js")),
    (
        "vendor/uplot-1.6.32/uPlot.iife.min.js",
        "text/javascript",
        include_bytes!("../web/vendor/uplot-1.6.32/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot-1.6.32/uPlot.min.css",
        "text/css",
        include_bytes!("../web/vendor/uplot-1.6.32/uPlot.min.css"),
    ),
];

const INDEX: &[u8] = include_bytes!("../web/index.html");

/// `GET /`: the app's one page.
pub async fn index() -> Response {
    file("text/html; charset=utf-8", INDEX)
}

/// `GET /app/{*path}`: its scripts, styles and the vendored chart library.
pub async fn asset(Path(path): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == path) {
        Some((_, content_type, bytes)) => file(content_type, bytes),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}

fn file(content_type: &'static str, bytes: &'static [u8]) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Always revalidate: an upgraded binary serves new files under the same names.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
        ),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_module_the_app_imports_is_served() {
        let served: Vec<&str> = FILES.iter().map(|(name, _, _)| *name).collect();
        for (name, _, bytes) in FILES.iter().filter(|(name, _, _)| name.starts_with("js/")) {
            let text = std::str::from_utf8(bytes).unwrap();
            for import in text.lines().filter_map(|l| l.split(" from './").nth(1)) {
                let module = format!("js/{}", import.trim_end_matches(['\'', ';']));
                assert!(served.contains(&module.as_str()), "{name} imports {module}, which is not served");
            }
        }
        let index = std::str::from_utf8(INDEX).unwrap();
        for (name, _, _) in
            FILES.iter().filter(|(name, _, _)| !name.starts_with("js/") || *name == "js/main.js")
        {
            assert!(index.contains(&format!("/app/{name}")), "index.html does not load {name}");
        }
    }
}
