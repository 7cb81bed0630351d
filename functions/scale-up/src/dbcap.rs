//! The optional database connection cap: scale-out never adds tasks past the
//! connections the database has left.

use crate::Deps;
use scaling::aws::timed;
use scaling::config::DbCap;
use scaling::policy::Cap;
use scaling::report::Step;

/// Reads `DatabaseConnections` when a DB instance is configured. A failed read
/// is a failed step, not a failed scale-out: the static cap still applies.
pub(crate) async fn read_connections(deps: &Deps) -> (Option<f64>, Option<Step>) {
    let Some(id) = deps
        .config
        .db_cap
        .as_ref()
        .and_then(|c| c.instance_id.as_deref())
    else {
        return (None, None);
    };
    let (res, step) = timed(
        "database_connections",
        deps.cloudwatch.database_connections(id),
    )
    .await;
    (res.ok().flatten(), Some(step))
}

/// The most tasks the database allows. Static: every task may open its whole
/// pool (`max / pool`). With the metric, also what the connections left allow
/// on top of the current tasks (others' connections count too); the smaller wins.
pub fn cap(db: &DbCap, desired: i32, connections: Option<f64>) -> Cap {
    let pool = f64::from(db.pool_per_task);
    let max = f64::from(db.max_connections);
    let static_cap = (max / pool).floor() as i32;
    match connections {
        Some(used) => {
            let headroom = ((max - used).max(0.0) / pool).floor() as i32;
            let live_cap = desired.saturating_add(headroom);
            Cap {
                tasks: static_cap.min(live_cap),
                why: format!(
                    "database connections: {used:.0} of {} used, {} per task",
                    db.max_connections, db.pool_per_task
                ),
            }
        }
        None => Cap {
            tasks: static_cap,
            why: format!(
                "database connections: {} max, {} per task",
                db.max_connections, db.pool_per_task
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> DbCap {
        DbCap {
            max_connections: 100,
            pool_per_task: 10,
            instance_id: Some("visits-db".into()),
        }
    }

    #[test]
    fn static_cap_without_metric() {
        assert_eq!(cap(&db(), 3, None).tasks, 10);
    }

    #[test]
    fn live_headroom_counts_other_clients() {
        // 3 tasks + 45 connections from others: 75 used, 25 left -> 2 more tasks.
        let c = cap(&db(), 3, Some(75.0));
        assert_eq!(c.tasks, 5);
        assert!(c.why.contains("75 of 100"), "{}", c.why);
        // Over the limit already: no headroom, cap = current.
        assert_eq!(cap(&db(), 3, Some(120.0)).tasks, 3);
    }
}
