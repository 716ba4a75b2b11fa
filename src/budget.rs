//! The byte budget: a bound on the memory that deliveries in flight may hold, whatever arrives.
//!
//! The shards bound how many deliveries wait, but a count says nothing about size: 64 bodies
//! of 1 MiB are 64 MiB, and their events, headers and database statements hold copies of them
//! until they are answered. So before its body is read, each delivery reserves what it may
//! hold (its declared length, at most the body limit, plus a fixed share for its headers and
//! event) from one budget for the whole instance, and gives it back when it is answered. When
//! the budget is spent, a delivery is refused at once with 503 and `Retry-After`, before it
//! costs anything: nothing is read, parsed or recorded.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a delivery costs beyond its body: headers (up to 64 KiB are accepted), the event and
/// its key, the answer.
const OVERHEAD_BYTES: u64 = 16 * 1024;
/// The budget is counted in KiB, so that a large budget fits a semaphore's permits.
const UNIT: u64 = 1024;

#[derive(Clone)]
pub struct Budget {
    kib: Arc<Semaphore>,
}

/// A delivery's reservation; returned to the budget when dropped (when it is answered).
pub struct Reserved(#[allow(dead_code)] OwnedSemaphorePermit);

impl Budget {
    pub fn new(mib: u32) -> Self {
        Self {
            kib: Arc::new(Semaphore::new(mib as usize * 1024)),
        }
    }

    /// Refuses a budget smaller than the largest body a source accepts: that source's large
    /// deliveries would be answered 503 forever. (A budget of exactly that size still refuses
    /// the last `OVERHEAD_BYTES` below the limit; it is the operator's figure, kept as given.)
    pub fn check(mib: u32, largest_body: u64) -> Result<(), String> {
        let needed = largest_body;
        if u64::from(mib) * 1024 * UNIT >= needed {
            return Ok(());
        }
        Err(format!(
            "idemhook.inflight_budget_mib = {mib} cannot hold the largest body a source accepts \
             ({largest_body} bytes): raise it to at least {} or lower that source's max_body",
            needed.div_ceil(1024 * UNIT)
        ))
    }

    /// Reserves room for a delivery of up to `body_bytes`, or `None` when the budget cannot
    /// hold it now.
    pub fn try_reserve(&self, body_bytes: u64) -> Option<Reserved> {
        let kib = (body_bytes + OVERHEAD_BYTES).div_ceil(UNIT);
        let kib = u32::try_from(kib).ok()?;
        self.kib
            .clone()
            .try_acquire_many_owned(kib)
            .ok()
            .map(Reserved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reservation_is_returned_when_dropped_and_the_budget_refuses_past_its_size() {
        let budget = Budget::new(1); // 1024 KiB
        let big = budget.try_reserve(1000 * 1024).expect("fits");
        assert!(budget.try_reserve(100 * 1024).is_none(), "over the budget");
        drop(big);
        assert!(budget.try_reserve(100 * 1024).is_some());
        assert!(
            budget.try_reserve(2 * 1024 * 1024).is_none(),
            "larger than the whole budget"
        );
    }

    #[test]
    fn a_budget_smaller_than_the_largest_body_is_refused_naming_the_key() {
        const MIB: u64 = 1024 * 1024;
        assert!(Budget::check(128, 25 * MIB).is_ok());
        assert!(Budget::check(25, 25 * MIB).is_ok());
        let err = Budget::check(24, 25 * MIB).unwrap_err();
        assert!(
            err.contains("idemhook.inflight_budget_mib = 24") && err.contains("at least 25"),
            "{err}"
        );
    }
}
