//! `POST /api/visit` and `GET /api/visits`.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::{require_bearer, AppState};
use crate::store::NewVisit;

/// Cap on the visit body: it only carries a page path.
pub const BODY_LIMIT: usize = 1024;
const PAGE_MAX: usize = 512;
const USER_AGENT_MAX: usize = 256;

/// The optional body, e.g. `{ "page": "/pricing" }`; unknown fields are rejected so that typos
/// don't pass silently.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct VisitBody {
    page: Option<String>,
}

/// Records a visit and answers 201 with the committed row.
pub async fn record(
    State(state): State<AppState>,
    // Optional, so that the router also works when served without connect info.
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::TooLarge(BODY_LIMIT)
        } else {
            ApiError::BadRequest("could not read the request body".into())
        }
    })?;
    require_json(&headers)?;
    let page = parse_body(&body)?;
    let visit = NewVisit {
        task_id: state.identity.task_id.clone(),
        client_ip: client_ip(
            &headers,
            peer.map(|Extension(ConnectInfo(addr))| addr.ip()),
            state.config.trusted_proxy_hops,
        ),
        user_agent: headers
            .get(header::USER_AGENT)
            .map(|v| truncate(&String::from_utf8_lossy(v.as_bytes()), USER_AGENT_MAX)),
        page,
    };
    let row = state.store.record(visit).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// `{ total, recent }`: the exact total from the counter row and the 10 newest visits, their
/// addresses masked and user agents left out unless the request carries the admin token.
pub async fn summary(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let full = headers.contains_key(header::AUTHORIZATION)
        && require_bearer(&headers, state.config.admin_token.as_deref(), "").is_ok();
    let json = state.store.summary().await?;
    let body = if full { json.full } else { json.public };
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Visit posts must say `Content-Type: application/json` (a `charset` parameter is fine). A
/// cross-site form or `fetch` without a preflight can only send `text/plain`, form types or
/// none at all, so this also keeps other sites from writing visits through a browser.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if json {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType(
            "Content-Type must be application/json",
        ))
    }
}

fn parse_body(body: &[u8]) -> Result<Option<String>, ApiError> {
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => return Ok(None),
        // serde reads a struct from an array too (`["/x"]` would be the page): refuse it.
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "the body must be a JSON object, e.g. {\"page\": \"/pricing\"}".into(),
            ))
        }
    }
    let parsed: VisitBody = serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?;
    match parsed.page {
        None => Ok(None),
        Some(p) if p.is_empty() || p.chars().count() > PAGE_MAX => Err(ApiError::BadRequest(
            format!("page must be 1 to {PAGE_MAX} characters"),
        )),
        Some(p) if p.chars().any(char::is_control) => Err(ApiError::BadRequest(
            "page must not contain control characters".into(),
        )),
        Some(p) => Ok(Some(p)),
    }
}

/// The client's address. Each proxy appends the address it saw to `X-Forwarded-For`, so only
/// the last `hops` entries were written by proxies we run (the ALB: one); the entry they name
/// is the last of them, the rightmost. Entries further left came from the client and could be
/// anything. With `hops` 0, or fewer entries than `hops`, the peer address.
/// "X-Forwarded-For", Application Load Balancers:
/// https://docs.aws.amazon.com/elasticloadbalancing/latest/application/x-forwarded-headers.html
fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>, hops: usize) -> Option<String> {
    let forwarded: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let from_proxies = hops
        .checked_sub(1)
        .and_then(|back| forwarded.len().checked_sub(1 + back))
        .and_then(|i| forwarded[i].parse::<IpAddr>().ok());
    from_proxies.or(peer).map(|ip| ip.to_string())
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_validation() {
        assert_eq!(parse_body(b"").unwrap(), None);
        assert_eq!(parse_body(b"{}").unwrap(), None);
        assert_eq!(
            parse_body(br#"{"page":"/pricing"}"#).unwrap().as_deref(),
            Some("/pricing")
        );
        assert!(parse_body(b"{").is_err());
        assert!(parse_body(br#"{"page":1}"#).is_err());
        assert!(parse_body(br#"{"pgae":"/x"}"#).is_err());
        assert!(parse_body(br#"{"page":""}"#).is_err());
        assert!(parse_body(br#"{"page":"a\nb"}"#).is_err());
    }

    #[test]
    fn client_ip_trusts_only_the_entries_our_proxies_added() {
        let mut h = HeaderMap::new();
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        assert_eq!(client_ip(&h, peer, 1).as_deref(), Some("10.0.0.1"));
        // The client sent "1.2.3.4"; the ALB appended the address it saw.
        h.insert("x-forwarded-for", "1.2.3.4, 203.0.113.7".parse().unwrap());
        assert_eq!(client_ip(&h, peer, 1).as_deref(), Some("203.0.113.7"));
        // Two proxies of ours (e.g. CloudFront then the ALB): the second entry from the right.
        h.insert(
            "x-forwarded-for",
            "1.2.3.4, 203.0.113.7, 198.51.100.2".parse().unwrap(),
        );
        assert_eq!(client_ip(&h, peer, 2).as_deref(), Some("203.0.113.7"));
        assert_eq!(client_ip(&h, peer, 0).as_deref(), Some("10.0.0.1"));
        assert_eq!(client_ip(&h, peer, 4).as_deref(), Some("10.0.0.1"));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(&h, peer, 1).as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn only_json_objects_and_json_content_types() {
        assert!(parse_body(br#"["/x"]"#).is_err());
        assert!(parse_body(b" 7").is_err());
        let mut h = HeaderMap::new();
        assert!(require_json(&h).is_err());
        h.insert("content-type", "text/plain".parse().unwrap());
        assert!(require_json(&h).is_err());
        h.insert(
            "content-type",
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(require_json(&h).is_ok());
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé");
    }
}
