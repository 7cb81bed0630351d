//! Coalesced reads never answer from before the request: `GET /api/visits` may share one
//! database read with other GETs, but only a read that starts after the request arrived. So a
//! GET sent after a 201 sees that row, and its `total` counts every visit acknowledged (by any
//! client) before the GET was sent.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering::SeqCst};
use std::sync::Arc;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::spawn_app;

const WRITERS: usize = 12;
const ROUNDS: usize = 25;
const READERS: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_after_201_sees_the_row_and_counts_it() {
    let app = spawn_app().await;
    // Visits answered 201 so far, by every writer.
    let acked = Arc::new(AtomicI64::new(0));
    let done = Arc::new(AtomicBool::new(false));

    // Background readers keep a summary read in flight almost always, so that the writers'
    // GETs arrive while one runs: the case where joining it would answer too early.
    let mut readers = Vec::new();
    for _ in 0..READERS {
        let (client, url, done) = (app.client.clone(), app.url("/api/visits"), done.clone());
        readers.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !done.load(SeqCst) {
                let resp = client.get(&url).send().await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK);
                resp.bytes().await.unwrap();
                n += 1;
            }
            n
        }));
    }

    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (client, base, acked) = (app.client.clone(), app.base.clone(), acked.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                let resp = client
                    .post(format!("{base}/api/visit"))
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"page":"/w{w}/{i}"}}"#))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(resp.status(), StatusCode::CREATED);
                let id = resp.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
                // Counted before the GET is sent: the GET must include at least this many.
                let floor = acked.fetch_add(1, SeqCst) + 1;
                let body: Value = client
                    .get(format!("{base}/api/visits"))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                let total = body["total"].as_i64().unwrap();
                assert!(
                    total >= floor,
                    "stale read: total {total} but {floor} visits were acknowledged before the GET"
                );
                let recent: Vec<i64> = body["recent"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|r| r["id"].as_i64().unwrap())
                    .collect();
                // The row is among the 10 newest, or 10 newer rows have pushed it out.
                let seen =
                    recent.contains(&id) || (recent.len() == 10 && recent.iter().all(|r| *r > id));
                assert!(
                    seen,
                    "row {id} missing from the GET after its 201: {recent:?}"
                );
            }
        }));
    }
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, SeqCst);
    let mut reads = 0;
    for r in readers {
        reads += r.await.unwrap();
    }
    assert!(reads > 0, "the background readers never ran");
    let expected = (WRITERS * ROUNDS) as i64;
    assert_eq!(app.visits().await["total"].as_i64().unwrap(), expected);
    assert_eq!(app.row_count().await, expected);
}
