//! The web page at `/` (docs/api.md, "The web page"): one HTML page with its stylesheet, script and
//! icon, embedded in the binary so that a task image needs nothing but the
//! executable and there is no front-end build step.
//!
//! The asset URLs are not versioned, so every response says `no-cache` and
//! carries a strong ETag (a hash of the embedded bytes, computed at compile
//! time): a browser revalidates with one cheap `304` and never pairs a new page
//! with an old script after a deploy.

use axum::{
    http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
    Router,
};

/// One embedded file and the headers it is served with.
struct Asset {
    body: &'static str,
    content_type: &'static str,
    /// FNV-1a of `body`, so the ETag changes exactly when the file does.
    hash: u64,
}

impl Asset {
    const fn new(body: &'static str, content_type: &'static str) -> Self {
        Self {
            body,
            content_type,
            hash: fnv1a(body.as_bytes()),
        }
    }
}

const INDEX: Asset = Asset::new(
    include_str!("../static/index.html"),
    "text/html; charset=utf-8",
);
const STYLE: Asset = Asset::new(
    include_str!("../static/style.css"),
    "text/css; charset=utf-8",
);
const SCRIPT: Asset = Asset::new(
    include_str!("../static/app.js"),
    "text/javascript; charset=utf-8",
);
const ICON: Asset = Asset::new(include_str!("../static/favicon.svg"), "image/svg+xml");

/// The page loads only its own files and talks only to its own origin, so the
/// policy can forbid everything else (inline script included).
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Routes for the page and its assets. Generic over the state so that it merges
/// into the API's router whatever state that router carries.
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    Router::new()
        .route("/", get(|h: HeaderMap| async move { serve(&INDEX, &h) }))
        .route(
            "/static/style.css",
            get(|h: HeaderMap| async move { serve(&STYLE, &h) }),
        )
        .route(
            "/static/app.js",
            get(|h: HeaderMap| async move { serve(&SCRIPT, &h) }),
        )
        .route(
            "/static/favicon.svg",
            get(|h: HeaderMap| async move { serve(&ICON, &h) }),
        )
}

/// Answers `304` when the browser already holds this version, else the file.
fn serve(asset: &Asset, request: &HeaderMap) -> Response {
    let etag = format!("\"{:016x}\"", asset.hash);
    let mut headers = HeaderMap::new();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if etag_matches(request, &etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    if asset.content_type.starts_with("text/html") {
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            HeaderName::from_static("referrer-policy"),
            HeaderValue::from_static("no-referrer"),
        );
    }
    (headers, asset.body).into_response()
}

/// `If-None-Match` may list several tags or `*` (RFC 9110 §13.1.2); weak
/// comparison applies, so a `W/` prefix is ignored.
fn etag_matches(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|tag| tag.trim().trim_start_matches("W/"))
        .any(|tag| tag == "*" || tag == etag)
}

/// FNV-1a, 64 bit: tiny and `const`, enough to tell versions of a file apart.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    async fn get(path: &str, if_none_match: Option<&str>) -> (StatusCode, HeaderMap, String) {
        let mut req = Request::get(path);
        if let Some(tag) = if_none_match {
            req = req.header(header::IF_NONE_MATCH, tag);
        }
        let res = routes::<()>()
            .oneshot(req.body(Body::empty()).expect("request"))
            .await
            .expect("infallible router");
        let (parts, body) = res.into_parts();
        let bytes = body.collect().await.expect("body").to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8(bytes.to_vec()).expect("utf-8 body"),
        )
    }

    #[tokio::test]
    async fn every_asset_is_served_with_its_content_type() {
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/static/style.css", "text/css; charset=utf-8"),
            ("/static/app.js", "text/javascript; charset=utf-8"),
            ("/static/favicon.svg", "image/svg+xml"),
        ] {
            let (status, headers, body) = get(path, None).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert_eq!(headers[header::CONTENT_TYPE], content_type, "{path}");
            assert_eq!(headers[header::CACHE_CONTROL], "no-cache", "{path}");
            assert!(headers.contains_key(header::ETAG), "{path}");
            assert!(!body.is_empty(), "{path}");
        }
    }

    #[tokio::test]
    async fn every_asset_the_page_links_to_exists() {
        let (_, headers, html) = get("/", None).await;
        assert!(headers.contains_key(header::CONTENT_SECURITY_POLICY));
        let linked: Vec<&str> = html
            .split(['"', '\''])
            .filter(|s| s.starts_with("/static/"))
            .collect();
        assert!(linked.len() >= 3, "page links {linked:?}");
        for path in linked {
            assert_eq!(get(path, None).await.0, StatusCode::OK, "{path}");
        }
    }

    #[tokio::test]
    async fn a_matching_etag_gets_not_modified_and_another_gets_the_file() {
        let (_, headers, _) = get("/static/app.js", None).await;
        let etag = headers[header::ETAG]
            .to_str()
            .expect("ascii etag")
            .to_owned();
        let (status, _, body) = get("/static/app.js", Some(&etag)).await;
        assert_eq!(status, StatusCode::NOT_MODIFIED);
        assert!(body.is_empty());
        let listed = format!("\"0000000000000000\", W/{etag}");
        assert_eq!(
            get("/static/app.js", Some(&listed)).await.0,
            StatusCode::NOT_MODIFIED
        );
        let (status, _, _) = get("/static/app.js", Some("\"0000000000000000\"")).await;
        assert_eq!(status, StatusCode::OK);
    }

    #[test]
    fn etags_differ_between_files() {
        assert_ne!(INDEX.hash, SCRIPT.hash);
        assert_ne!(STYLE.hash, ICON.hash);
    }
}
