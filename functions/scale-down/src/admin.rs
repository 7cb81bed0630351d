//! HTTP calls to a task's drain control (`/admin/drain`, `/admin/undrain`).

use crate::port::{DrainStatus, PortError};
use scaling::config::IpRewrite;
use std::time::Duration;

/// Calls the visits API's admin endpoints on one task at a time.
#[derive(Debug, Clone)]
pub struct AdminClient {
    http: reqwest::Client,
    token: Option<String>,
    rewrite: Option<IpRewrite>,
}

#[derive(serde::Deserialize)]
struct DrainBody {
    draining: bool,
    in_flight: u64,
}

impl AdminClient {
    /// `timeout` bounds every call: an unreachable task must not stall victim
    /// selection or the drain wait.
    pub fn new(token: Option<String>, rewrite: Option<IpRewrite>, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .expect("a plain-HTTP reqwest client always builds");
        Self {
            http,
            token,
            rewrite,
        }
    }

    /// `http://<ip>:<port>` with the local stack's prefix rewrite applied.
    pub fn base_url(&self, ip: &str, port: i32) -> String {
        let ip = match &self.rewrite {
            Some(r) => r.apply(ip),
            None => ip.to_string(),
        };
        format!("http://{ip}:{port}")
    }

    async fn call(
        &self,
        method: reqwest::Method,
        base: &str,
        path: &str,
        body: Option<String>,
    ) -> Result<reqwest::Response, PortError> {
        let op = format!("{method} {path}");
        let mut req = self.http.request(method, format!("{base}{path}"));
        if let Some(b) = body {
            req = req.header("content-type", "application/json").body(b);
        }
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .map_err(|e| PortError::retryable(&op, e.to_string()))?;
        if !resp.status().is_success() {
            return Err(PortError::fatal(&op, format!("HTTP {}", resp.status())));
        }
        Ok(resp)
    }

    async fn status(
        &self,
        method: reqwest::Method,
        base: &str,
        body: Option<String>,
    ) -> Result<DrainStatus, PortError> {
        let resp = self.call(method, base, "/admin/drain", body).await?;
        let body: DrainBody = resp
            .json()
            .await
            .map_err(|e| PortError::fatal("/admin/drain", format!("bad body: {e}")))?;
        Ok(DrainStatus {
            draining: body.draining,
            in_flight: body.in_flight,
        })
    }

    /// `GET /admin/drain`.
    pub async fn drain_status(&self, base: &str) -> Result<DrainStatus, PortError> {
        self.status(reqwest::Method::GET, base, None).await
    }

    /// `POST /admin/drain` with `{"ttl_s": ttl}`: the task keeps serving (and passing its
    /// health check), answers with `Connection: close` and closes idle keep-alives, until `ttl`
    /// passes without a renewal (this same call).
    pub async fn drain(&self, base: &str, ttl: Duration) -> Result<DrainStatus, PortError> {
        let body = serde_json::json!({ "ttl_s": ttl.as_secs().max(1) }).to_string();
        self.status(reqwest::Method::POST, base, Some(body)).await
    }

    /// `POST /admin/undrain`: a rollback puts the task back in service.
    pub async fn undrain(&self, base: &str) -> Result<(), PortError> {
        self.call(reqwest::Method::POST, base, "/admin/undrain", None)
            .await
            .map(|_| ())
    }
}
