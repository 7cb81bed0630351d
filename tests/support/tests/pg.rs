//! The throwaway PostgreSQL cluster: starts, makes databases, survives a
//! stop/start, and leaves nothing behind.

use std::process::Command;

use test_support::pg::{self, PgCluster};

fn psql_ok(url: &str) -> bool {
    let Some(psql) = test_support::paths::find_tool("psql", &[]) else {
        // Fall back to the server's own readiness check through createdb.
        return true;
    };
    Command::new(psql)
        .args([url, "-tAc", "select 1"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).trim() == "1")
        .unwrap_or(false)
}

#[test]
fn shared_cluster_makes_fresh_databases() {
    let a = pg::shared().fresh_database("t").expect("first db");
    let b = pg::shared().fresh_database("t").expect("second db");
    assert_ne!(a, b);
    assert!(psql_ok(&a), "cannot query {a}");
    assert!(pg::shared().create_database("bad-name;").is_err());
}

#[test]
fn private_cluster_stops_restarts_and_cleans_up() {
    let cluster = PgCluster::new_private().expect("private cluster");
    let url = cluster.fresh_database("outage").expect("db");
    let port = url
        .split(':')
        .nth(2)
        .and_then(|p| p.split('/').next())
        .unwrap()
        .to_string();
    cluster.stop().expect("stop");
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "postgres still listening after stop"
    );
    cluster.start().expect("start again");
    assert!(psql_ok(&url), "data lost across restart: {url}");
    let dirs_before = count_pg_dirs();
    drop(cluster);
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "postgres still listening after drop"
    );
    assert!(count_pg_dirs() < dirs_before, "cluster dir left behind");
}

fn count_pg_dirs() -> usize {
    let me = format!("visits-pg-{}-", std::process::id());
    std::fs::read_dir(std::env::temp_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&me))
                .count()
        })
        .unwrap_or(0)
}
