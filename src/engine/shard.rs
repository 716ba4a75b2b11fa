//! A shard: one ractor actor that owns a slice of the key space and keeps each key's
//! deliveries in order.
//!
//! Every delivery of a key hashes to the same shard, and the shard lets one delivery per key
//! reach the writers at a time: a second delivery that arrives while the first is being
//! committed waits here, and is answered from the cache once the first has committed (or tries
//! itself if the first failed). So within an instance a key is never in two transactions, and
//! the cache is filled without a race: when a shard looks a key up, nothing here is
//! committing it.
//!
//! The rule is per-key order, not per-shard stop-and-wait: the shard never waits on the
//! database. It hands new keys to the [`writers`](super::writers) and goes on with its other
//! keys while they commit; each settled key comes back to it as a `Released` message.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::OwnedSemaphorePermit;

use super::cache::CommittedKeys;
use super::outcome::{EngineError, Outcome};
use super::writers::{Pending, Writers};
use super::Job;
use crate::event::key::Sha256Digest;

/// A delivery accepted by the router.
pub struct Request {
    pub job: Job,
    pub reply: RpcReplyPort<Result<Outcome, EngineError>>,
    /// The delivery's place in the shard's bound, returned when the request is dropped:
    /// answered, or abandoned by a stopped shard, whichever path that takes.
    pub permit: OwnedSemaphorePermit,
}

impl Request {
    fn answer(self, result: Result<Outcome, EngineError>) {
        answer(self.reply, self.permit, result);
    }
}

/// Answers the caller. The place in the bound is returned first: once the caller has its
/// answer, the shard no longer counts the delivery (a scrape or a drain right after sees it
/// gone).
fn answer(
    reply: RpcReplyPort<Result<Outcome, EngineError>>,
    permit: OwnedSemaphorePermit,
    result: Result<Outcome, EngineError>,
) {
    drop(permit);
    // The caller may have gone (the client hung up). The outcome stands: a committed event is
    // answered `duplicate` when the provider retries.
    let _ = reply.send(result);
}

pub enum ShardMsg {
    Process(Request),
    /// The writers settled this key's delivery (and the cache knows if it committed): its
    /// next waiting delivery, if any, may go.
    Released(Sha256Digest),
}

pub struct ShardActor;

/// What every shard shares.
pub struct ShardContext {
    pub writers: Writers,
    pub cache: CommittedKeys,
}

pub struct ShardState {
    ctx: Arc<ShardContext>,
    /// Keys with a delivery at the writers, each with the deliveries of the same key that
    /// arrived since, in arrival order. Owned by the actor, so no lock guards it.
    in_flight: HashMap<Sha256Digest, VecDeque<Request>>,
}

impl ShardState {
    pub fn new(ctx: Arc<ShardContext>) -> Self {
        Self {
            ctx,
            in_flight: HashMap::new(),
        }
    }

    /// Hands a delivery whose key is not known to be committed to the writers. The key stays
    /// in flight (with whatever waits behind it) until the writers release it.
    fn dispatch(&mut self, myself: &ActorRef<ShardMsg>, request: Request) {
        let Request { job, reply, permit } = request;
        let digest = job.event.digest;
        self.in_flight.entry(digest).or_default();
        let myself = myself.clone();
        self.ctx.writers.submit(Pending {
            job,
            done: Box::new(move |result| {
                answer(reply, permit, result);
                // Fails only when the shard has stopped, and its waiting deliveries with it.
                let _ = myself.cast(ShardMsg::Released(digest));
            }),
        });
    }
}

impl Actor for ShardActor {
    type Msg = ShardMsg;
    type State = ShardState;
    type Arguments = ShardState;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        state: ShardState,
    ) -> Result<ShardState, ActorProcessingErr> {
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut ShardState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ShardMsg::Process(request) => {
                let digest = request.job.event.digest;
                if let Some(waiting) = state.in_flight.get_mut(&digest) {
                    waiting.push_back(request);
                } else if let Some(outcome) = cached(&state.ctx, &request.job).await {
                    request.answer(Ok(outcome));
                } else {
                    state.dispatch(&myself, request);
                }
            }
            ShardMsg::Released(digest) => {
                // Each waiting delivery is now a duplicate, unless the one before failed:
                // then the first of them tries, and the rest wait for it in turn.
                while let Some(next) = state
                    .in_flight
                    .get_mut(&digest)
                    .and_then(VecDeque::pop_front)
                {
                    match cached(&state.ctx, &next.job).await {
                        Some(outcome) => next.answer(Ok(outcome)),
                        None => {
                            state.dispatch(&myself, next);
                            return Ok(());
                        }
                    }
                }
                state.in_flight.remove(&digest);
            }
        }
        Ok(())
    }
}

async fn cached(ctx: &ShardContext, job: &Job) -> Option<Outcome> {
    let event = &job.event;
    ctx.cache
        .duplicate(&event.key, &event.digest, &event.payload_sha256)
        .await
}
