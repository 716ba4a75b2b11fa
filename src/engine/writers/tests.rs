//! The writers' group commit against an in-memory SQLite database.

use std::time::Duration;

use tokio::sync::oneshot;

use super::*;
use crate::clock::Clock;
use crate::event::Event;
use crate::handlers::{Handler, Payments};

async fn writers(max_batch: usize, writers: usize) -> Writers {
    let settings = crate::config::Settings::default();
    let db = crate::db::connect(crate::config::IN_MEMORY_DATABASE_URL, &settings)
        .await
        .expect("in-memory database");
    crate::db::migrate(crate::config::IN_MEMORY_DATABASE_URL, &db)
        .await
        .expect("migrations");
    let metrics = Arc::new(Metrics::new());
    let cache = CommittedKeys::new(
        1000,
        Duration::from_secs(3600),
        metrics.cache_hits.clone(),
        metrics.check_hit.clone(),
    );
    let ctx = WriterContext {
        store: Store::new(
            db,
            3,
            crate::engine::store::Bounds {
                statement: Duration::from_secs(5),
                handlers: Duration::from_secs(30),
            },
            Clock::system(),
            metrics.clone(),
        ),
        cache,
        metrics,
        max_batch_bytes: None,
        max_batch,
        traces: None,
    };
    Writers::start(ctx, writers, 64)
}

/// Submits payments with these ids at once and waits for every outcome, in order.
async fn commit(writers: &Writers, ids: &[&str]) -> Vec<Result<Outcome, EngineError>> {
    let handlers: Arc<[Arc<dyn Handler>]> =
        Arc::new([Arc::new(Payments::new(Clock::system())) as Arc<dyn Handler>]);
    let mut answers = Vec::new();
    for id in ids {
        let (tx, rx) = oneshot::channel();
        writers.submit(Pending {
            job: Job {
                event: Arc::new(Event::payment(id, "o1", 1, "eur")),
                handlers: handlers.clone(),
                trace: None,
            },
            done: Box::new(move |result| {
                let _ = tx.send(result);
            }),
        });
        answers.push(rx);
    }
    let all = futures::future::join_all(answers);
    tokio::time::timeout(Duration::from_secs(10), all)
        .await
        .expect("every event answered")
        .into_iter()
        .map(|r| r.expect("an outcome"))
        .collect()
}

/// A delivery whose COMMIT failed on the client but was applied meets its own record when
/// it is redone: its attempt token says so, and it is `processed`. Another delivery of the
/// same event meets the same record as a `duplicate`.
#[tokio::test]
async fn a_commit_that_landed_is_recognised_by_its_own_attempt() {
    let writers = writers(16, 1).await;
    let handlers: Arc<[Arc<dyn Handler>]> =
        Arc::new([Arc::new(Payments::new(Clock::system())) as Arc<dyn Handler>]);
    let first = Event::payment("landed", "o1", 1, "eur");
    let token = first.attempt_token;
    let outcome = |event: Event| {
        let (tx, rx) = oneshot::channel();
        writers.submit(Pending {
            job: Job {
                event: Arc::new(event),
                handlers: handlers.clone(),
                trace: None,
            },
            done: Box::new(move |result| {
                let _ = tx.send(result);
            }),
        });
        rx
    };
    assert!(matches!(
        outcome(first).await.unwrap(),
        Ok(Outcome::Processed)
    ));
    // The same delivery again, as a rerun after a lost COMMIT answer would be.
    let mut rerun = Event::payment("landed", "o1", 1, "eur");
    rerun.attempt_token = token;
    assert!(matches!(
        outcome(rerun).await.unwrap(),
        Ok(Outcome::Processed)
    ));
    let other = Event::payment("landed", "o1", 1, "eur");
    assert!(matches!(
        outcome(other).await.unwrap(),
        Ok(Outcome::Duplicate { .. })
    ));
}

/// More events than fit in one group: the rest make the next group, and every one is
/// committed although nothing else ever arrives.
#[tokio::test]
async fn events_beyond_one_group_are_committed_in_the_next() {
    let writers = writers(2, 2).await;
    let results = commit(&writers, &["a1", "b1", "b2", "c1", "c2"]).await;
    assert!(
        results.iter().all(|r| matches!(r, Ok(Outcome::Processed))),
        "{results:?}"
    );
}

/// A group with a key committed before falls back to one transaction per event: the
/// duplicate is answered as such and the new event still commits.
#[tokio::test]
async fn a_duplicate_in_a_group_does_not_fail_its_neighbours() {
    let writers = writers(64, 1).await;
    let first = commit(&writers, &["x"]).await;
    assert!(matches!(first[..], [Ok(Outcome::Processed)]));
    let second = commit(&writers, &["y", "x"]).await;
    assert!(
        matches!(
            second[..],
            [Ok(Outcome::Processed), Ok(Outcome::Duplicate { .. })]
        ),
        "{second:?}"
    );
}
