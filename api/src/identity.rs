//! Who this task is: task id, availability zone and cluster, from the ECS task metadata
//! endpoint v4 (`GET $ECS_CONTAINER_METADATA_URI_V4/task`), else the hostname.

use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

/// The serving task, as reported in `/health`, `/api/metrics` and every stored visit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskIdentity {
    /// The ECS task id (last part of the task ARN), or the hostname outside ECS.
    pub task_id: String,
    /// The task's availability zone, when ECS says.
    pub availability_zone: Option<String>,
    /// The cluster name from the metadata (EMF dimension fallback for `CLUSTER_NAME`).
    pub cluster: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskMetadata {
    #[serde(rename = "TaskARN")]
    task_arn: String,
    availability_zone: Option<String>,
    cluster: Option<String>,
}

/// The metadata endpoint is local to the task: a slow answer means something is wrong, and
/// startup speed matters for scale-out, so give it little time.
const METADATA_TIMEOUT: Duration = Duration::from_millis(1000);

impl TaskIdentity {
    /// Asks the metadata endpoint when `metadata_uri` is set; falls back to the hostname (with a
    /// warning) when it is unset or does not answer.
    pub async fn discover(metadata_uri: Option<&str>) -> Self {
        if let Some(uri) = metadata_uri {
            match tokio::time::timeout(METADATA_TIMEOUT, fetch(uri)).await {
                Ok(Ok(meta)) => return Self::from_metadata(meta),
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "task metadata unusable; using the hostname")
                }
                Err(_) => tracing::warn!("task metadata timed out; using the hostname"),
            }
        }
        Self::from_hostname()
    }

    fn from_metadata(meta: TaskMetadata) -> Self {
        TaskIdentity {
            task_id: last_segment(&meta.task_arn),
            availability_zone: meta.availability_zone,
            cluster: meta.cluster.as_deref().map(last_segment),
        }
    }

    fn from_hostname() -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unknown".into());
        TaskIdentity {
            task_id: host,
            availability_zone: None,
            cluster: None,
        }
    }
}

/// `arn:aws:ecs:us-east-1:123456789012:task/visits/abc123` -> `abc123`; a plain name stays.
fn last_segment(arn_or_name: &str) -> String {
    arn_or_name
        .rsplit('/')
        .next()
        .unwrap_or(arn_or_name)
        .to_string()
}

async fn fetch(base: &str) -> anyhow::Result<TaskMetadata> {
    let uri: hyper::Uri = format!("{}/task", base.trim_end_matches('/')).parse()?;
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let resp = client.get(uri).await?;
    anyhow::ensure!(
        resp.status().is_success(),
        "metadata endpoint answered {}",
        resp.status()
    );
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(serde_json::from_slice(&body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_v4_task_document() {
        let doc = r#"{"Cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/visits",
            "TaskARN":"arn:aws:ecs:us-east-1:123456789012:task/visits/0123abcd",
            "AvailabilityZone":"us-east-1a","Containers":[]}"#;
        let id = TaskIdentity::from_metadata(serde_json::from_str(doc).unwrap());
        assert_eq!(id.task_id, "0123abcd");
        assert_eq!(id.availability_zone.as_deref(), Some("us-east-1a"));
        assert_eq!(id.cluster.as_deref(), Some("visits"));
    }

    #[tokio::test]
    async fn unreachable_endpoint_falls_back_to_hostname() {
        let id = TaskIdentity::discover(Some("http://127.0.0.1:1/v4")).await;
        assert!(!id.task_id.is_empty());
        assert_eq!(id.availability_zone, None);
    }
}
