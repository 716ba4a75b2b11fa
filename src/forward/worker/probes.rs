//! The circuit breaker's probes and the backlog gauges, refreshed every few seconds by the
//! worker's loop.

use std::sync::Arc;

use chrono::TimeDelta;
use tokio::task::JoinSet;

use super::Forwarder;
use crate::entities::destination;
use crate::forward::brakes;
use crate::forward::deliveries::{self, Brakes};
use crate::status::PauseReason;

impl Forwarder {
    /// The breaker's probes: for each destination it paused whose probe is due, one instance
    /// of the fleet takes the probe and tries one due delivery past the brakes. Destinations
    /// with failures counted (by any instance) become suspects, so the next 2xx here resets
    /// the count.
    pub(super) async fn probe_all(
        self: &Arc<Self>,
        rows: &[destination::Model],
        attempts: &mut JoinSet<()>,
    ) {
        let now = self.clock.now();
        for (target, slots) in &self.targets {
            let Some(row) = rows
                .iter()
                .find(|r| r.source == target.source && r.name == target.name)
            else {
                continue;
            };
            let paused_by_failures = row.paused_reason == Some(PauseReason::Failures);
            if row.consecutive_failures > 0 || paused_by_failures {
                self.suspects.set(target, true);
            }
            let due = row.next_probe_at.is_none_or(|at| at <= now);
            if !paused_by_failures || !due {
                continue;
            }
            let Ok(permit) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let every = TimeDelta::from_std(target.probe).unwrap_or(TimeDelta::MAX);
            match brakes::take_probe(&self.db, &target.source, &target.name, every, now).await {
                Ok(true) => {}
                Ok(false) => continue, // another instance took it
                Err(e) => {
                    tracing::warn!(source = %target.source, destination = %target.name, error = %e, "forwarding: cannot take a probe");
                    continue;
                }
            }
            let token: [u8; 16] = rand::random();
            let lease_until = now + TimeDelta::from_std(target.lease).unwrap_or(TimeDelta::MAX);
            let who = (target.source.as_str(), target.name.as_str());
            let claimed =
                deliveries::claim(&self.db, who, 1, now, lease_until, &token, Brakes::Ignore).await;
            let row = match claimed {
                Ok(rows) => rows.into_iter().next(),
                Err(e) => {
                    tracing::warn!(source = %target.source, destination = %target.name, error = %e, "forwarding: cannot claim a probe's delivery");
                    None
                }
            };
            let Some(row) = row else {
                continue;
            };
            tracing::info!(source = %target.source, destination = %target.name, "forwarding: probing a paused destination");
            self.leases.insert(row.id, token);
            let (this, target) = (self.clone(), target.clone());
            attempts.spawn(async move { this.deliver(&target, row, token, permit, true).await });
        }
    }

    /// The backlog and pause gauges; returns the destinations' rows, for the probes.
    pub(super) async fn refresh_gauges(&self) -> Vec<destination::Model> {
        let destinations = self
            .targets
            .iter()
            .map(|(t, _)| (t.source.as_str(), t.name.as_str()))
            .chain(self.pulled.iter().map(|(s, n)| (s.as_str(), n.as_str())));
        self.metrics
            .refresh(&self.db, destinations, self.clock.now())
            .await
    }
}
