//! Several instances of the real binary on one database, and a provider's deliveries spread
//! over them: the scale-out scenarios (the two-instance race, the storm).

use std::sync::Arc;

use futures::future::join_all;
use tokio::sync::Semaphore;

use super::process::{post, Server, ENV};

/// Most deliveries in flight at once over all instances: a provider's burst, and well under
/// the file descriptors a test may open.
const IN_FLIGHT: usize = 64;

/// `n` instances on `rocket_toml`, started one after another: each runs the pending
/// migrations at launch, which must not race.
pub async fn start_instances(n: usize, rocket_toml: &str) -> Arc<Vec<Server>> {
    let mut servers = Vec::with_capacity(n);
    for _ in 0..n {
        servers.push(Server::start(rocket_toml, &ENV).await);
    }
    Arc::new(servers)
}

/// Posts each `(instance, body)` to that instance's `demo` source, [`IN_FLIGHT`] at a time,
/// and returns the replies in the same order: (status, body, Retry-After).
pub async fn deliver(
    servers: &Arc<Vec<Server>>,
    deliveries: Vec<(usize, String)>,
) -> Vec<(u16, String, Option<String>)> {
    let client = reqwest::Client::new();
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let tasks = deliveries.into_iter().map(|(instance, body)| {
        let (client, servers, permits) = (client.clone(), servers.clone(), permits.clone());
        tokio::spawn(async move {
            let _permit = permits.acquire().await.expect("the semaphore stays open");
            post(&client, &servers[instance], "demo", &body, &[]).await
        })
    });
    join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("a delivery task panicked"))
        .collect()
}

/// How many replies answer `"status":"<outcome>"`.
pub fn count_outcome(replies: &[(u16, String, Option<String>)], outcome: &str) -> usize {
    let needle = format!(r#""status":"{outcome}""#);
    replies.iter().filter(|r| r.1.contains(&needle)).count()
}
