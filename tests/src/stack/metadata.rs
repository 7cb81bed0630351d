//! A fake ECS task metadata endpoint (v4): each API process gets
//! `ECS_CONTAINER_METADATA_URI_V4=http://127.0.0.1:PORT/<task id>` and so
//! learns its task ARN at `GET …/<task id>/task`, as on ECS ("Amazon ECS task metadata
//! endpoint version 4",
//! <https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-metadata-endpoint-v4.html>).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The endpoint: serves until dropped.
#[derive(Debug)]
pub struct Metadata {
    base: String,
    tasks: Arc<Mutex<HashMap<String, Value>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Metadata {
    /// Binds a free loopback port and starts serving.
    pub async fn start() -> anyhow::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let tasks: Arc<Mutex<HashMap<String, Value>>> = Arc::default();
        let served = tasks.clone();
        let server = tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let tasks = served.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = conn.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&buf[..n]);
                    let path = head.split_whitespace().nth(1).unwrap_or("/");
                    let id = path.trim_start_matches('/').split('/').next().unwrap_or("");
                    let doc = tasks.lock().expect("metadata map").get(id).cloned();
                    let (status, body) = match doc {
                        Some(doc) if path.ends_with("/task") => ("200 OK", doc.to_string()),
                        _ => ("404 Not Found", "{}".to_string()),
                    };
                    let reply = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                });
            }
        });
        Ok(Self {
            base,
            tasks,
            server,
        })
    }

    /// Registers a task and returns its `ECS_CONTAINER_METADATA_URI_V4`.
    pub fn add_task(&self, task_arn: &str, cluster: &str, az: Option<&str>) -> String {
        let id = task_id(task_arn);
        let doc = json!({"TaskARN": task_arn, "Cluster": cluster, "AvailabilityZone": az});
        self.tasks
            .lock()
            .expect("metadata map")
            .insert(id.clone(), doc);
        format!("{}/{id}", self.base)
    }
}

impl Drop for Metadata {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// `arn:aws:ecs:…:task/visits/abc` -> `abc`.
pub fn task_id(task_arn: &str) -> String {
    task_arn.rsplit('/').next().unwrap_or(task_arn).to_string()
}
