//! A fault-injecting HTTP proxy between the real SDK clients and the emulator:
//! every AWS call is logged by operation, and the planned one fails (a 500 in
//! the protocol's own error shape) or hangs past the SDK's timeout. The
//! emulator keeps the state, so an episode can be interrupted and replayed.

use super::faults::{Calls, Fault};
use super::wire::{read_request, write_response, Request};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};

/// The operation a request calls: `ecs:DescribeServices`, `elbv2:DeregisterTargets`...
pub fn operation(req: &Request) -> String {
    if let Some(target) = req.header("x-amz-target") {
        let op = target.rsplit('.').next().unwrap_or(target);
        return format!("ecs:{op}");
    }
    let body = String::from_utf8_lossy(&req.body);
    let field = |name: &str| {
        body.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .unwrap_or("?")
            .to_string()
    };
    let service = match field("Version").as_str() {
        "2015-12-01" => "elbv2",
        "2011-01-01" => "autoscaling",
        _ => "aws",
    };
    format!("{service}:{}", field("Action"))
}

/// A task call's name in the log: `task:POST /admin/drain` (as the fake tasks log them).
pub fn task_call(req: &Request) -> String {
    let path = req.path.split('?').next().unwrap_or_default();
    format!("task:{} {path}", req.method)
}

/// Starts the proxy in front of `upstream` (`http://127.0.0.1:PORT`); returns its endpoint.
pub async fn start(upstream: String, calls: Calls) -> String {
    start_on("127.0.0.1:0", upstream, calls, operation).await
}

/// The proxy on `listen`, naming each call with `name`.
pub async fn start_on(
    listen: &str,
    upstream: String,
    calls: Calls,
    name: fn(&Request) -> String,
) -> String {
    let listener = TcpListener::bind(listen).await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (upstream, calls, http) = (upstream.clone(), calls.clone(), http.clone());
            tokio::spawn(async move {
                let _ = serve(stream, &upstream, &calls, &http, name).await;
            });
        }
    });
    endpoint
}

async fn serve(
    mut s: TcpStream,
    upstream: &str,
    calls: &Calls,
    http: &reqwest::Client,
    name: fn(&Request) -> String,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut s).await? else {
        return Ok(());
    };
    let op = name(&req);
    let (index, fault) = calls.on_call(&op);
    match fault {
        Some(Fault::Hang) | None => {}
        Some(Fault::Error) => {
            let (headers, body) = if op.starts_with("ecs:") {
                (
                    vec![
                        ("Content-Type".into(), "application/x-amz-json-1.1".into()),
                        ("x-amzn-errortype".into(), "ServerException".into()),
                    ],
                    r#"{"__type":"ServerException","message":"injected fault"}"#.to_string(),
                )
            } else {
                (
                    vec![("Content-Type".into(), "text/xml".into())],
                    "<ErrorResponse><Error><Type>Receiver</Type><Code>InternalFailure</Code>\
                     <Message>injected fault</Message></Error><RequestId>f</RequestId></ErrorResponse>"
                        .to_string(),
                )
            };
            write_response(&mut s, 500, &headers, body.as_bytes()).await?;
            calls.answered(index);
            return Ok(());
        }
    }
    let method = reqwest::Method::from_bytes(req.method.as_bytes()).unwrap();
    let mut fwd = http.request(method, format!("{upstream}{}", req.path));
    for (k, v) in &req.headers {
        let skip = ["host", "content-length", "connection", "transfer-encoding"];
        if !skip.iter().any(|h| k.eq_ignore_ascii_case(h)) {
            fwd = fwd.header(k, v);
        }
    }
    let resp = fwd
        .body(req.body.clone())
        .send()
        .await
        .map_err(std::io::Error::other)?;
    let status = resp.status().as_u16();
    let headers: Vec<(String, String)> = resp
        .headers()
        .iter()
        .filter(|(k, _)| {
            !["content-length", "connection", "transfer-encoding"].contains(&k.as_str())
        })
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_string()))
        .collect();
    let body = resp.bytes().await.map_err(std::io::Error::other)?;
    if fault == Some(Fault::Hang) {
        // It happened upstream; the caller never learns so.
        tokio::time::sleep(Duration::from_secs(60)).await;
        return Ok(());
    }
    write_response(&mut s, status, &headers, &body).await?;
    calls.answered(index);
    Ok(())
}
