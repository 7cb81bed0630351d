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
use crate::state::AppState;
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
    let page = parse_body(&body)?;
    let visit = NewVisit {
        task_id: state.identity.task_id.clone(),
        client_ip: client_ip(&headers, peer.map(|Extension(ConnectInfo(addr))| addr.ip())),
        user_agent: headers
            .get(header::USER_AGENT)
            .map(|v| truncate(&String::from_utf8_lossy(v.as_bytes()), USER_AGENT_MAX)),
        page,
    };
    let row = state.store.record(visit).await?;
    Ok((StatusCode::CREATED, Json(row)).into_response())
}

/// `{ total, recent }`: the exact total from the counter row and the 10 newest visits.
pub async fn summary(State(state): State<AppState>) -> Result<Response, ApiError> {
    let json = state.store.summary().await?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

fn parse_body(body: &[u8]) -> Result<Option<String>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
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

/// The first hop of `X-Forwarded-For` (the client, as the ALB sets it), else the peer.
fn client_ip(headers: &HeaderMap, peer: Option<IpAddr>) -> Option<String> {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse::<IpAddr>().ok())
        .or(peer)
        .map(|ip| ip.to_string())
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
    fn client_ip_prefers_first_forwarded_hop() {
        let mut h = HeaderMap::new();
        let peer = Some(IpAddr::from([10, 0, 0, 1]));
        assert_eq!(client_ip(&h, peer).as_deref(), Some("10.0.0.1"));
        h.insert("x-forwarded-for", "203.0.113.7, 10.0.0.2".parse().unwrap());
        assert_eq!(client_ip(&h, peer).as_deref(), Some("203.0.113.7"));
        h.insert("x-forwarded-for", "garbage".parse().unwrap());
        assert_eq!(client_ip(&h, peer).as_deref(), Some("10.0.0.1"));
    }

    #[test]
    fn truncates_on_char_boundaries() {
        assert_eq!(truncate("ééé", 2), "éé");
    }
}
