//! A task's drain control as the visits API serves it (`GET`/`POST
//! /admin/drain`, `POST /admin/undrain`), on the loopback twin of the task's
//! emulated IP. In-flight requests finish one per poll once draining, so the
//! wait has something to wait for.

use super::faults::{Calls, Fault};
use super::wire::{read_request, write_response};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;

/// What one fake task reports.
#[derive(Debug, Clone, Default)]
pub struct TaskState {
    pub draining: bool,
    pub in_flight: u64,
    /// Set by the agent once ECS stopped the task: the server stops answering.
    pub stopped: bool,
    pub drain_calls: usize,
    pub undrain_calls: usize,
}

/// A fake task's server; the state is shared with the test.
#[derive(Debug, Clone)]
pub struct FakeTask {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<TaskState>>,
}

impl FakeTask {
    /// Serves on `addr` (a 127.x.y.z twin) until the runtime ends.
    pub async fn start(addr: SocketAddr, in_flight: u64, calls: Calls) -> Self {
        let listener = TcpListener::bind(addr)
            .await
            .unwrap_or_else(|e| panic!("{addr}: {e}"));
        let state = Arc::new(Mutex::new(TaskState {
            in_flight,
            ..TaskState::default()
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let (state, calls) = (shared.clone(), calls.clone());
                tokio::spawn(async move {
                    let Ok(Some(req)) = read_request(&mut s).await else {
                        return;
                    };
                    if state.lock().unwrap().stopped {
                        return; // connection closed without an answer
                    }
                    let (index, fault) =
                        calls.on_call(&format!("task:{} {}", req.method, req.path));
                    if fault == Some(Fault::Error) {
                        let _ = write_response(&mut s, 500, &[], b"injected").await;
                        calls.answered(index);
                        return;
                    }
                    let body = {
                        let mut st = state.lock().unwrap();
                        match (req.method.as_str(), req.path.as_str()) {
                            ("POST", "/admin/drain") => {
                                st.draining = true;
                                st.drain_calls += 1;
                            }
                            ("POST", "/admin/undrain") => {
                                st.draining = false;
                                st.undrain_calls += 1;
                            }
                            // What was in flight when the drain began finishes, one per look.
                            ("GET", "/admin/drain") if st.draining && st.in_flight > 0 => {
                                st.in_flight -= 1;
                            }
                            _ => {}
                        }
                        serde_json::json!({"draining": st.draining, "in_flight": st.in_flight})
                            .to_string()
                    };
                    if fault == Some(Fault::Hang) {
                        // It took effect; the caller times out.
                        tokio::time::sleep(Duration::from_secs(30)).await;
                        return;
                    }
                    let headers = [("Content-Type".to_string(), "application/json".to_string())];
                    let _ = write_response(&mut s, 200, &headers, body.as_bytes()).await;
                    calls.answered(index);
                });
            }
        });
        Self { addr, state }
    }
}
