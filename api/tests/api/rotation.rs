//! The RDS-managed password rotates while load runs: the database gets a new password and the
//! secret (in the emulator) its new version, and every connection is cut, the worst case of a
//! pool recycling its connections after a rotation. With `DB_SECRET_ARN` the API re-reads the
//! secret on the first refused login: no acknowledged visit is lost and a request fails for at
//! most one retry. Without it (a password injected at task start) the task stays broken.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_sdk_secretsmanager::Client as SecretsClient;
use sqlx::{Executor, PgPool};
use test_support::pg::PgCluster;
use visits_api::{Application, Config};

use crate::helpers::{eventually, test_env};

const ROLE: &str = "rotating_app";

/// A private cluster where `ROLE` must give its password (scram), the others stay trusted, and a
/// database that `ROLE` owns. Returns (cluster, superuser pool on the database, database URL
/// without a password).
async fn password_database() -> (PgCluster, PgPool, String) {
    let cluster = tokio::task::spawn_blocking(PgCluster::new_private)
        .await
        .unwrap()
        .expect("a private PostgreSQL cluster");
    let admin = PgPool::connect(&cluster.url())
        .await
        .expect("superuser pool");
    admin
        .execute(format!("CREATE ROLE {ROLE} LOGIN PASSWORD 'before-rotation'").as_str())
        .await
        .unwrap();
    admin
        .execute(format!("CREATE DATABASE visits_rotation OWNER {ROLE}").as_str())
        .await
        .unwrap();
    let hba: String = sqlx::query_scalar("SHOW hba_file")
        .fetch_one(&admin)
        .await
        .unwrap();
    let rest = std::fs::read_to_string(&hba).expect("read pg_hba.conf");
    // First match wins: the role needs its password from loopback, everyone else keeps trust.
    let line = format!("host all {ROLE} 127.0.0.1/32 scram-sha-256\n");
    std::fs::write(&hba, format!("{line}{rest}")).expect("write pg_hba.conf");
    admin.execute("SELECT pg_reload_conf()").await.unwrap();
    let base = cluster.url();
    let host_port = base
        .trim_start_matches("postgres://postgres@")
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let db_admin = PgPool::connect(&format!("postgres://postgres@{host_port}/visits_rotation"))
        .await
        .unwrap();
    (
        cluster,
        db_admin,
        format!("postgres://{ROLE}@{host_port}/visits_rotation"),
    )
}

async fn secret(client: &SecretsClient, name: &str, password: &str) -> String {
    let body = serde_json::json!({"username": ROLE, "password": password, "engine": "postgres"});
    client
        .create_secret()
        .name(name)
        .secret_string(body.to_string())
        .send()
        .await
        .expect("create the secret in the emulator")
        .arn()
        .unwrap()
        .to_string()
}

/// The rotation as RDS does it: the database's password changes, then the secret's current
/// version; here every open connection is cut as well.
async fn rotate(admin: &PgPool, client: &SecretsClient, arn: &str, password: &str) {
    admin
        .execute(format!("ALTER ROLE {ROLE} PASSWORD '{password}'").as_str())
        .await
        .unwrap();
    let body = serde_json::json!({"username": ROLE, "password": password, "engine": "postgres"});
    client
        .put_secret_value()
        .secret_id(arn)
        .secret_string(body.to_string())
        .send()
        .await
        .expect("new secret version");
    sqlx::query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1")
        .bind(ROLE)
        .execute(admin)
        .await
        .unwrap();
}

async fn start(
    db_url: &str,
    overrides: &[(&str, &str)],
    aws: aws_config::SdkConfig,
) -> (String, tokio::sync::oneshot::Sender<()>) {
    let mut all = vec![("DB_POOL_MAX", "4"), ("DB_ACQUIRE_TIMEOUT_MS", "3000")];
    all.extend_from_slice(overrides);
    let env = test_env(db_url, &all);
    let config = Config::from_lookup(|k| env.get(k).cloned()).expect("test config");
    let app = Application::build_with_aws(config, Some(aws))
        .await
        .expect("build the app");
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(app.run_until(async move {
        let _ = rx.await;
    }));
    (base, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rotated_password_is_reread_without_losing_an_acknowledged_visit() {
    let moto = tokio::task::spawn_blocking(test_support::moto::shared)
        .await
        .unwrap();
    let aws = moto.sdk_config().await;
    let secrets = SecretsClient::new(&aws);
    let (_cluster, admin, db_url) = password_database().await;
    // The role really needs its password: a wrong one is refused.
    let wrong = db_url.replace(&format!("{ROLE}@"), &format!("{ROLE}:wrong@"));
    assert!(
        PgPool::connect(&wrong).await.is_err(),
        "pg_hba must ask {ROLE} for a password"
    );

    let arn = secret(&secrets, "rotation-test/db", "before-rotation").await;
    let (base, _stop) = start(&db_url, &[("DB_SECRET_ARN", &arn)], aws.clone()).await;
    // The old behaviour: the password given once at start, as ECS injects a secret.
    let fixed_url = db_url.replace(&format!("{ROLE}@"), &format!("{ROLE}:before-rotation@"));
    let (fixed_base, _stop_fixed) = start(&fixed_url, &[], aws.clone()).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    assert_eq!(
        client
            .get(format!("{fixed_base}/health"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // Load: 8 writers, each retrying a failed POST after 1 s (a client's usual backoff), for a
    // bounded time. Cutting every connection is this test's own worst case (a rotation cuts
    // none): the API takes pooled connections without a ping, so a dead idle one can fail a
    // retry by itself, independently of the credentials. A request may therefore retry twice;
    // none may fail three times, and the second retries are counted and printed.
    let acked: Arc<Mutex<Vec<i64>>> = Arc::default();
    let first_failures = Arc::new(AtomicU64::new(0));
    let retry_failures = Arc::new(AtomicU64::new(0));
    let second_attempts = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (client, base) = (client.clone(), base.clone());
        let (acked, first, second, retry, stop) = (
            acked.clone(),
            first_failures.clone(),
            second_attempts.clone(),
            retry_failures.clone(),
            stop.clone(),
        );
        writers.push(tokio::spawn(async move {
            for i in 0..100_000u32 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let body = format!("{{\"page\": \"/w{w}/{i}\"}}");
                let mut attempt = 0;
                loop {
                    let resp = client
                        .post(format!("{base}/api/visit"))
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await;
                    match resp {
                        Ok(r) if r.status() == 201 => {
                            let v: serde_json::Value = r.json().await.unwrap();
                            acked.lock().unwrap().push(v["id"].as_i64().expect("id"));
                            break;
                        }
                        _ if attempt < 2 => {
                            if attempt == 0 {
                                first.fetch_add(1, Ordering::Relaxed);
                            } else {
                                second.fetch_add(1, Ordering::Relaxed);
                            }
                            attempt += 1;
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        other => {
                            let why = match other {
                                Ok(r) => {
                                    format!("{} {}", r.status(), r.text().await.unwrap_or_default())
                                }
                                Err(e) => e.to_string(),
                            };
                            eprintln!("failed three times: {why}");
                            retry.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                    }
                }
            }
        }));
    }
    let count = || acked.lock().unwrap().len();
    assert!(
        eventually(Duration::from_secs(30), || async { count() >= 200 }).await,
        "load did not start: {} acknowledged",
        count()
    );
    let before = count();
    rotate(&admin, &secrets, &arn, "after-rotation").await;
    assert!(
        eventually(Duration::from_secs(30), || async {
            count() >= before + 500
        })
        .await,
        "writes did not resume after the rotation: {} acknowledged since",
        count() - before
    );
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        tokio::time::timeout(Duration::from_secs(60), w)
            .await
            .expect("writers stop")
            .unwrap();
    }

    let ids = acked.lock().unwrap().clone();
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM visits WHERE id = ANY($1)")
        .bind(&ids)
        .fetch_one(&admin)
        .await
        .unwrap();
    assert_eq!(stored, ids.len() as i64, "an acknowledged visit is missing");
    assert_eq!(
        retry_failures.load(Ordering::Relaxed),
        0,
        "a request failed three times ({} first attempts failed)",
        first_failures.load(Ordering::Relaxed)
    );
    assert!(
        second_attempts.load(Ordering::Relaxed) <= first_failures.load(Ordering::Relaxed),
        "more second retries than first failures"
    );
    // The new connections logged in with the new password.
    let logged_in: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE usename = $1")
            .bind(ROLE)
            .fetch_one(&admin)
            .await
            .unwrap();
    assert!(logged_in > 0, "no connection of {ROLE} after the rotation");
    println!(
        "rotation under load: {} visits acknowledged ({} after the rotation), {} first attempts failed, {} needed a second retry, none failed three times",
        ids.len(),
        ids.len() - before,
        first_failures.load(Ordering::Relaxed),
        second_attempts.load(Ordering::Relaxed)
    );

    // The task that kept the start-time password cannot open a connection any more. `/ready`
    // says so; `/health` is liveness and stays 200 (a database fault is not the task's own).
    let fixed_health = || async {
        client
            .get(format!("{fixed_base}/ready"))
            .send()
            .await
            .map(|r| r.status() == 503)
            .unwrap_or(false)
    };
    assert!(
        eventually(Duration::from_secs(30), fixed_health).await,
        "a password fixed at start should fail after the rotation"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(
        fixed_health().await,
        "the fixed-password task recovered on its own?"
    );
    let healthy = client.get(format!("{base}/ready")).send().await.unwrap();
    assert_eq!(healthy.status(), 200, "the secret-reading task is healthy");
}
