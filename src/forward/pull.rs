//! The `pull` destination kind: deliveries a consumer takes over HTTP instead of receiving
//! them (it cannot accept inbound requests: behind a firewall, a batch job).
//!
//! A consumer **leases** due deliveries (the worker's own claim: same fence, same order by
//! `ordering`, an operator's pause respected), applies them, and **acks** them; a **nack**
//! counts the attempt and makes the delivery due again later. A lease that runs out un-acked
//! counts as an attempt too: the claim counts it when it is taken, and a delivery whose
//! `max_attempts` leases all ran out is dead, not leased forever (a message that kills its
//! consumer must not loop). A stale token (its lease ran out, and the delivery may have gone
//! to another consumer since) is reported, never acked. Rate limit and breaker do not apply:
//! the consumer sets the pace.
//!
//! A lease waits (`wait_secs`, a long poll) until a delivery is due: a commit on this instance
//! wakes it at once ([`Wake`]); rows committed elsewhere are found by a poll.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sea_orm::{DatabaseConnection, DbErr};
use subtle::ConstantTimeEq;

use super::deliveries::pull::{self as statements, Lease};
use super::deliveries::{self, Brakes, Settle};
use super::Wake;
use crate::clock::Clock;
use crate::config::{destination_table, DestinationKind, Environment, Settings};
use crate::entities::delivery;
use crate::event::key::sha256;

/// One `pull` destination, resolved at launch.
pub struct PullTarget {
    pub source: String,
    pub name: String,
    /// SHA-256 of the consumer's bearer token: compared in constant time.
    token: [u8; 32],
    pub lease: Duration,
    pub max_attempts: u32,
}

/// A delivery handed to a consumer under its lease.
pub struct Leased {
    pub row: delivery::Model,
    /// `<row id>.<hex token>`: what the consumer acks or nacks.
    pub lease_token: String,
    pub leased_until: DateTime<Utc>,
}

/// What an ack or a nack did: how many it settled, and the tokens that were stale.
pub struct Settled {
    pub done: u64,
    pub stale: Vec<String>,
}

/// Every `pull` destination of the configuration, and what their consumers' requests need.
pub struct Pull {
    db: DatabaseConnection,
    clock: Clock,
    wake: Wake,
    poll: Duration,
    targets: HashMap<(String, String), PullTarget>,
}

impl Pull {
    /// The `pull` destinations, each token read from its variable (missing or empty refuses
    /// to launch).
    pub fn new(
        settings: &Settings,
        env: &Environment,
        db: DatabaseConnection,
        clock: Clock,
        wake: Wake,
    ) -> Result<Self, String> {
        let mut targets = HashMap::new();
        for (source, cfg) in &settings.sources {
            for (name, d) in cfg.destinations() {
                if d.kind != DestinationKind::Pull {
                    continue;
                }
                let table = destination_table(&format!("idemhook.sources.{source}"), name);
                let var = d.token_env.as_deref().unwrap_or_default();
                let token = env.required(&table, "token_env", var)?;
                let target = PullTarget {
                    source: source.clone(),
                    name: name.to_owned(),
                    token: sha256(token.as_bytes()),
                    lease: Duration::from_secs(d.lease_secs.unwrap_or(30)),
                    max_attempts: d.max_attempts,
                };
                targets.insert((source.clone(), name.to_owned()), target);
            }
        }
        Ok(Self {
            db,
            clock,
            wake,
            poll: Duration::from_millis(settings.forward_poll_ms),
            targets,
        })
    }

    /// The `pull` destination `name` of `source`, if one is configured.
    pub fn find(&self, source: &str, name: &str) -> Option<&PullTarget> {
        self.targets.get(&(source.to_owned(), name.to_owned()))
    }

    /// Leases up to `max` due deliveries, waiting up to `wait` for one to be due.
    pub async fn lease(
        &self,
        target: &PullTarget,
        max: u64,
        wait: Duration,
    ) -> Result<Vec<Leased>, DbErr> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let woken = self.wake.pulled();
            tokio::pin!(woken);
            woken.as_mut().enable();
            let leased = self.lease_once(target, max).await?;
            let now = tokio::time::Instant::now();
            if !leased.is_empty() || now >= deadline {
                return Ok(leased);
            }
            let nap = self.poll.min(deadline - now);
            tokio::select! {
                _ = woken => {}
                _ = tokio::time::sleep(nap) => {}
            }
        }
    }

    async fn lease_once(&self, target: &PullTarget, max: u64) -> Result<Vec<Leased>, DbErr> {
        let now = self.clock.now();
        let token: [u8; 16] = rand::random();
        let until = now + TimeDelta::from_std(target.lease).unwrap_or(TimeDelta::MAX);
        let destination = (target.source.as_str(), target.name.as_str());
        let rows = deliveries::claim(
            &self.db,
            destination,
            max,
            now,
            until,
            &token,
            Brakes::Respect,
        )
        .await?;
        let mut leased = Vec::with_capacity(rows.len());
        for row in rows {
            // The claim counted this lease as an attempt: past `max_attempts`, every lease
            // it had ran out un-acked.
            if u32::try_from(row.attempts).unwrap_or(u32::MAX) > target.max_attempts {
                let error = format!(
                    "its {} leases all ran out without an ack or a nack",
                    target.max_attempts
                );
                let dead = Settle::Dead {
                    status: None,
                    error,
                };
                deliveries::settle(&self.db, &row, &token, dead, now).await?;
                continue;
            }
            leased.push(Leased {
                lease_token: format!("{}.{}", row.id, hex::encode(token)),
                leased_until: until,
                row,
            });
        }
        Ok(leased)
    }

    /// Acks the deliveries of `tokens` (already parsed, see [`parse_token`]).
    pub async fn ack(
        &self,
        target: &PullTarget,
        tokens: &[(String, Lease)],
    ) -> Result<Settled, DbErr> {
        let leases: Vec<Lease> = tokens.iter().map(|(_, lease)| *lease).collect();
        let destination = (target.source.as_str(), target.name.as_str());
        let acked = statements::ack(&self.db, destination, &leases, self.clock.now()).await?;
        let mut settled = Settled {
            done: 0,
            stale: Vec::new(),
        };
        for ((text, _), acked) in tokens.iter().zip(acked) {
            if acked {
                settled.done += 1;
            } else {
                settled.stale.push(text.clone());
            }
        }
        if settled.done > 0 {
            self.wake.notify(); // the next of an ordering key may be due now
        }
        Ok(settled)
    }

    /// Gives the deliveries of `tokens` back: each attempt counted, due again after `delay`,
    /// or dead when it was the last.
    pub async fn nack(
        &self,
        target: &PullTarget,
        tokens: &[(String, Lease)],
        delay: Duration,
    ) -> Result<Settled, DbErr> {
        let now = self.clock.now();
        let destination = (target.source.as_str(), target.name.as_str());
        let mut settled = Settled {
            done: 0,
            stale: Vec::new(),
        };
        for (text, lease) in tokens {
            let Some(row) = statements::held_row(&self.db, destination, lease, now).await? else {
                settled.stale.push(text.clone());
                continue;
            };
            let error = "nacked by the consumer".to_owned();
            let settle = if u32::try_from(row.attempts).unwrap_or(u32::MAX) >= target.max_attempts {
                Settle::Dead {
                    status: None,
                    error,
                }
            } else {
                let at = now + TimeDelta::from_std(delay).unwrap_or(TimeDelta::MAX);
                Settle::Retry {
                    at,
                    status: None,
                    error,
                    in_doubt: false,
                }
            };
            if deliveries::settle(&self.db, &row, &lease.1, settle, now).await? {
                settled.done += 1;
            } else {
                settled.stale.push(text.clone());
            }
        }
        Ok(settled)
    }
}

impl PullTarget {
    /// Whether `presented` is this destination's token, compared in constant time (digests,
    /// so the time does not depend on the presented length either).
    pub fn authorized(&self, presented: &str) -> bool {
        bool::from(sha256(presented.as_bytes()).ct_eq(&self.token))
    }
}

/// A lease token as [`Pull::lease`] wrote it: `<row id>.<32 hex digits>`.
pub fn parse_token(text: &str) -> Option<Lease> {
    let (id, token) = text.split_once('.')?;
    let id: i64 = id.parse().ok()?;
    let bytes = hex::decode(token).ok()?;
    let token: [u8; 16] = bytes.try_into().ok()?;
    Some((id, token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lease_token_reads_back_and_nothing_else_does() {
        let token = [7u8; 16];
        let text = format!("42.{}", hex::encode(token));
        assert_eq!(parse_token(&text), Some((42, token)));
        for bad in [
            "",
            "42",
            "42.",
            "x.07",
            "42.0707",
            &format!("42.{}zz", hex::encode([7u8; 15])),
        ] {
            assert_eq!(parse_token(bad), None, "{bad}");
        }
    }
}
