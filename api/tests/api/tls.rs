//! TLS to the database, which RDS for PostgreSQL 15+ requires: the API connects encrypted with
//! `DB_SSLMODE=require`, checks the server against `DB_SSLROOTCERT` with `verify-full`, and
//! refuses a server its roots don't vouch for.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use sqlx::PgPool;
use visits_api::{Application, Config};

use crate::helpers::{eventually, private_cluster, spawn_app_on, test_env};

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl (install it with `apt-get install openssl`)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA and a server certificate for 127.0.0.1 that it signed; returns the CA's path.
fn make_certs(dir: &Path) -> PathBuf {
    let steps = [
        "req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 2 -subj /CN=visits-test-ca",
        "req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1",
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san.ext",
    ];
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    for step in steps {
        openssl(dir, &step.split(' ').collect::<Vec<_>>());
    }
    dir.join("ca.crt")
}

/// Turns TLS on in a running cluster: certificate and key into its data directory (owned by
/// the server's user, key private), `ssl = on`, reload.
async fn enable_tls(admin: &PgPool, certs: &Path) {
    let data: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(admin)
        .await
        .unwrap();
    let data = Path::new(&data);
    let owner = std::fs::metadata(data).unwrap();
    for f in ["server.crt", "server.key"] {
        let to = data.join(f);
        std::fs::copy(certs.join(f), &to).unwrap();
        std::os::unix::fs::chown(&to, Some(owner.uid()), Some(owner.gid())).unwrap();
        std::fs::set_permissions(&to, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    sqlx::query("ALTER SYSTEM SET ssl = on")
        .execute(admin)
        .await
        .unwrap();
    sqlx::query("SELECT pg_reload_conf()")
        .execute(admin)
        .await
        .unwrap();
    let on = eventually(Duration::from_secs(30), || async {
        let v: String = sqlx::query_scalar("SHOW ssl")
            .fetch_one(admin)
            .await
            .unwrap();
        v == "on"
    })
    .await;
    assert!(on, "the server did not turn TLS on");
}

/// The API's connections to `db`: (encrypted, not encrypted).
async fn api_connections(admin: &PgPool, db: &str) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl) \
         FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
         WHERE a.application_name = 'visits-api' AND a.datname = $1",
    )
    .bind(db)
    .fetch_one(admin)
    .await
    .unwrap()
}

#[tokio::test]
async fn connects_over_tls_and_checks_the_server() {
    let cluster = tokio::task::spawn_blocking(private_cluster).await.unwrap();
    let admin = PgPool::connect(&cluster.url()).await.unwrap();
    let certs = std::env::temp_dir().join(format!("visits-tls-{}", std::process::id()));
    std::fs::create_dir_all(&certs).unwrap();
    let ca = make_certs(&certs);
    enable_tls(&admin, &certs).await;
    let ca = ca.to_str().unwrap().to_string();

    for (i, settings) in [
        vec![("DB_SSLMODE", "require")],
        vec![
            ("DB_SSLMODE", "verify-full"),
            ("DB_SSLROOTCERT", ca.as_str()),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let db = format!("tls_{i}");
        let url = cluster.create_database(&db).unwrap();
        let app = spawn_app_on(&url, &settings).await;
        let resp = app.post_visit(None).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "{settings:?}");
        let (tls, plain) = api_connections(&admin, &db).await;
        assert!(
            tls >= 1 && plain == 0,
            "{settings:?}: {tls} TLS, {plain} plain connections"
        );
    }

    // verify-full with only the built-in public roots: our CA is not among them.
    let url = cluster.create_database("tls_untrusted").unwrap();
    let env = test_env(
        &url,
        &[("DB_SSLMODE", "verify-full"), ("DB_STARTUP_TIMEOUT_S", "1")],
    );
    let config = Config::from_lookup(|k| env.get(k).cloned()).unwrap();
    let refused = Application::build(config).await;
    assert!(
        refused.is_err(),
        "connected to a server no root vouches for"
    );
    std::fs::remove_dir_all(&certs).ok();
}
