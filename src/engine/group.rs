//! How a writer's group of events is cut into transactions. The queue bounds a group by count
//! (`max_batch`); this bounds each transaction by bytes: a group commit's multi-row INSERTs
//! (inbox, outbox) carry every body of the group in one statement, and MariaDB refuses a
//! statement over its `max_allowed_packet`. An event alone always fits: its source's body
//! limit was lowered at launch to what one statement can store.

use super::Job;

/// `jobs` in consecutive parts whose bodies add up to at most `max_bytes` (a part holds at
/// least one event), in order, so each part keeps the group's digest order. `None`: one part.
pub(super) fn by_bytes<'a, 'j>(jobs: &'a [&'j Job], max_bytes: Option<u64>) -> Vec<&'a [&'j Job]> {
    let Some(max_bytes) = max_bytes else {
        return vec![jobs];
    };
    let mut parts = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (i, job) in jobs.iter().enumerate() {
        let size = job.event.body.len() as u64;
        if i > start && bytes + size > max_bytes {
            parts.push(&jobs[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < jobs.len() {
        parts.push(&jobs[start..]);
    }
    parts
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::event::Event;

    fn job(body_len: usize) -> Job {
        let mut event = Event::payment("e", "o", 1, "eur");
        event.body = vec![b'x'; body_len];
        Job {
            event: Arc::new(event),
            handlers: Arc::new([]),
            trace: None,
        }
    }

    fn sizes(parts: &[&[&Job]]) -> Vec<Vec<usize>> {
        parts
            .iter()
            .map(|p| p.iter().map(|j| j.event.body.len()).collect())
            .collect()
    }

    #[test]
    fn parts_stay_within_the_bytes_and_keep_the_order() {
        let jobs = [job(4), job(4), job(3), job(10), job(1), job(1)];
        let refs: Vec<&Job> = jobs.iter().collect();
        assert_eq!(
            sizes(&by_bytes(&refs, Some(8))),
            vec![vec![4, 4], vec![3], vec![10], vec![1, 1]]
        );
        assert_eq!(sizes(&by_bytes(&refs, None)), vec![vec![4, 4, 3, 10, 1, 1]]);
        assert!(by_bytes(&[], Some(8)).is_empty());
    }
}
