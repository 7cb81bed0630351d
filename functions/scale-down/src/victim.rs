//! Which task leaves: pure selection over what the tasks and ECS reported.

use std::collections::BTreeMap;

/// `VICTIM_STRATEGY` (parsed by the shared config).
pub use scaling::config::VictimStrategy as Strategy;

/// What selection knows about one running task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub started_at: Option<i64>,
    pub az: Option<String>,
    /// `Some(n)`: the task answered `GET /admin/drain`; `None`: unreachable or not asked.
    pub in_flight: Option<u64>,
}

/// The chosen task, the strategy that chose it and, when that is not the
/// configured one, why it fell back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub id: String,
    pub strategy: Strategy,
    pub fallback: Option<String>,
}

/// Chooses the victim among `candidates` (None when there are none).
///
/// Fallback chain: fewest-in-flight -> az-balanced (a task did not answer) ->
/// newest (no AZ known). Ties break towards the newest task, then the id, so the
/// choice is deterministic.
pub fn choose(candidates: &[Candidate], strategy: Strategy) -> Option<Choice> {
    if candidates.is_empty() {
        return None;
    }
    let mut fallback = None;
    let mut strategy = strategy;
    if strategy == Strategy::FewestInFlight {
        let unreachable: Vec<&str> = candidates
            .iter()
            .filter(|c| c.in_flight.is_none())
            .map(|c| c.id.as_str())
            .collect();
        if unreachable.is_empty() {
            let best = candidates
                .iter()
                .min_by(|a, b| {
                    a.in_flight
                        .cmp(&b.in_flight)
                        .then_with(|| newest_first(a, b))
                })
                .expect("non-empty");
            return Some(Choice {
                id: best.id.clone(),
                strategy,
                fallback: None,
            });
        }
        fallback = Some(format!(
            "fewest-in-flight: {} task(s) did not answer GET /admin/drain ({})",
            unreachable.len(),
            unreachable.join(", ")
        ));
        strategy = Strategy::AzBalanced;
    }
    if strategy == Strategy::AzBalanced {
        if candidates.iter().all(|c| c.az.is_some()) {
            let mut per_az: BTreeMap<&str, usize> = BTreeMap::new();
            for c in candidates {
                *per_az.entry(c.az.as_deref().unwrap_or("")).or_default() += 1;
            }
            let best = candidates
                .iter()
                .min_by(|a, b| {
                    let na = per_az[a.az.as_deref().unwrap_or("")];
                    let nb = per_az[b.az.as_deref().unwrap_or("")];
                    nb.cmp(&na).then_with(|| newest_first(a, b))
                })
                .expect("non-empty");
            return Some(Choice {
                id: best.id.clone(),
                strategy,
                fallback,
            });
        }
        let why = "az-balanced: a task has no availability zone";
        fallback = Some(match fallback {
            Some(f) => format!("{f}; {why}"),
            None => why.to_string(),
        });
    }
    let best = candidates.iter().min_by(|a, b| newest_first(a, b))?;
    Some(Choice {
        id: best.id.clone(),
        strategy: Strategy::Newest,
        fallback,
    })
}

/// Orders newer tasks first (unknown start times last), then by id.
fn newest_first(a: &Candidate, b: &Candidate) -> std::cmp::Ordering {
    b.started_at
        .unwrap_or(i64::MIN)
        .cmp(&a.started_at.unwrap_or(i64::MIN))
        .then_with(|| a.id.cmp(&b.id))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: &str, started: i64, az: &str, in_flight: Option<u64>) -> Candidate {
        Candidate {
            id: id.into(),
            started_at: Some(started),
            az: Some(az.into()),
            in_flight,
        }
    }

    #[test]
    fn fewest_in_flight_wins_then_newest_breaks_ties() {
        let tasks = [
            c("a", 10, "us-east-1a", Some(3)),
            c("b", 20, "us-east-1b", Some(1)),
            c("c", 30, "us-east-1a", Some(1)),
        ];
        let choice = choose(&tasks, Strategy::FewestInFlight).unwrap();
        assert_eq!(choice.id, "c");
        assert_eq!(choice.strategy, Strategy::FewestInFlight);
        assert_eq!(choice.fallback, None);
    }

    #[test]
    fn an_unreachable_task_falls_back_to_az_balanced_and_says_so() {
        let tasks = [
            c("a", 10, "us-east-1a", Some(0)),
            c("b", 20, "us-east-1b", None),
            c("c", 5, "us-east-1a", Some(9)),
        ];
        let choice = choose(&tasks, Strategy::FewestInFlight).unwrap();
        // us-east-1a has two tasks; its newest is "a".
        assert_eq!(choice.id, "a");
        assert_eq!(choice.strategy, Strategy::AzBalanced);
        assert!(choice.fallback.unwrap().contains("b"));
    }

    #[test]
    fn newest_ignores_in_flight() {
        let tasks = [c("a", 10, "x", Some(0)), c("b", 20, "x", Some(50))];
        assert_eq!(choose(&tasks, Strategy::Newest).unwrap().id, "b");
    }

    #[test]
    fn az_balanced_without_zones_falls_back_to_newest() {
        let mut tasks = vec![c("a", 10, "x", None), c("b", 20, "y", None)];
        tasks[0].az = None;
        let choice = choose(&tasks, Strategy::AzBalanced).unwrap();
        assert_eq!(
            (choice.id.as_str(), choice.strategy),
            ("b", Strategy::Newest)
        );
        assert!(choice.fallback.is_some());
    }

    #[test]
    fn no_candidates_no_choice() {
        assert_eq!(choose(&[], Strategy::Newest), None);
    }
}
