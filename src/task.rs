//! One guard for every background task, and the order in which a shutdown stops them.
//!
//! A [`TaskGuard`] owns a spawned task and the signal that tells it to stop, the way
//! mini-redis's `DbDropGuard` owns its purge task: the app holds the guard (as Rocket state),
//! so no task outlives the app that started it. Each task is told to stop through a
//! `watch::Receiver<bool>` it is given at spawn, and says at spawn what stopping means for it
//! ([`OnStop`]).
//!
//! A drop cannot await, so the drop is only the fallback. The shutdown proper is
//! [`Tasks::shutdown`], which stops the tasks in the order the app depends on: the sweeper and
//! the job runner, then the shards drain, then the delivery worker gives back its leases.

use std::future::Future;
use std::sync::Mutex;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What stopping a task means: whether the shutdown waits for its end, and what a drop does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnStop {
    /// [`TaskGuard::stop`] tells the task and returns at once; the task ends at its next look
    /// at the signal, and whatever it is still doing when the guard drops is aborted. For a
    /// task whose unfinished work is safe to cut (the next run takes it up) and which should
    /// not hold the shutdown: the sweeper (a sweep under way may take minutes), the job runner
    /// (a job cut short is resumed when its lease runs out), the console's activity readings.
    Tell,
    /// [`TaskGuard::stop`] tells the task and waits for its end, which the task bounds itself;
    /// a guard dropped without `stop` tells the task and lets it finish on its own. For a task
    /// whose end does work that must not be cut: the delivery worker (it waits up to the
    /// shutdown grace for its attempts, then gives back the leases of the rest) and the
    /// engine's mismatch recorder (a last flush).
    AwaitEnd,
}

/// A running background task: told to stop by [`TaskGuard::stop`], or by the drop.
pub struct TaskGuard {
    /// For the logs.
    name: &'static str,
    on_stop: OnStop,
    stop: watch::Sender<bool>,
    /// Taken by the `stop` that awaits it. A std Mutex, not a tokio one: no await happens
    /// while it is held (the handle is taken out, then awaited).
    task: Mutex<Option<JoinHandle<()>>>,
}

impl TaskGuard {
    /// Spawns `task` on the runtime, handing it the receiving end of its stop signal: the
    /// value turns `true` once, when the task is told to stop.
    pub fn spawn<F, Fut>(name: &'static str, on_stop: OnStop, task: F) -> Self
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (stop, stopped) = watch::channel(false);
        let task = tokio::spawn(task(stopped));
        TaskGuard {
            name,
            on_stop,
            stop,
            task: Mutex::new(Some(task)),
        }
    }

    /// A task that runs `tick` every `every`, and once more when told to stop (a recorder's
    /// last flush: [`OnStop::AwaitEnd`]).
    pub fn every<F, Fut>(name: &'static str, every: std::time::Duration, tick: F) -> Self
    where
        F: Fn() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        TaskGuard::spawn(name, OnStop::AwaitEnd, |mut stopped| async move {
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(every) => tick().await,
                    _ = stopped.changed() => break,
                }
            }
            tick().await;
        })
    }

    /// Tells the task to stop and, for [`OnStop::AwaitEnd`], waits for its end. A second call
    /// returns at once.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        if self.on_stop == OnStop::Tell {
            tracing::debug!(task = self.name, "background task told to stop");
            return;
        }
        let task = self.task.lock().ok().and_then(|mut t| t.take());
        if let Some(task) = task {
            if let Err(e) = task.await {
                tracing::warn!(task = self.name, error = %e, "background task ended abnormally");
            }
            tracing::debug!(task = self.name, "background task stopped");
        }
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if self.on_stop == OnStop::Tell {
            if let Some(task) = self.task.get_mut().ok().and_then(Option::take) {
                task.abort();
            }
        }
    }
}

/// The app's background tasks (Rocket state). The engine's shards are not among them: the
/// drain that stops them is handed to [`Tasks::shutdown`], which runs it between the others.
pub struct Tasks {
    /// The retention sweeper.
    pub sweeper: TaskGuard,
    /// The job runner (replays and redrives in batches).
    pub jobs: TaskGuard,
    /// The delivery worker, when some source forwards and `forward_worker` is on.
    pub forwarder: Option<TaskGuard>,
    /// The console's per-minute readings; stopped by the drop only.
    pub activity: TaskGuard,
}

impl Tasks {
    /// The graceful shutdown, in the one order that loses nothing:
    ///
    /// 1. the sweeper and the job runner are told to stop, so that no sweep or job batch
    ///    starts while the app stops (neither is awaited: see [`OnStop::Tell`]);
    /// 2. `drain` runs: the shards commit (or fail) and answer every event already accepted.
    ///    The delivery worker still runs meanwhile, so an event committed now is delivered
    ///    by this instance when the app answers in time;
    /// 3. the delivery worker stops, once nothing can commit any more: it waits (within the
    ///    shutdown grace) for its attempts in flight and gives back the leases of the rest,
    ///    so every committed event's delivery is delivered or due at once for the next
    ///    instance.
    ///
    /// `drain` is a future, not yet polled: nothing of it runs before step 2. Returns what it
    /// returns (the events still in flight when the grace ran out).
    pub async fn shutdown<D: Future<Output = usize>>(&self, drain: D) -> usize {
        self.sweeper.stop().await;
        self.jobs.stop().await;
        let left = drain.await;
        if let Some(forwarder) = &self.forwarder {
            forwarder.stop().await;
        }
        left
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    /// Spawns a task that waits for its stop signal and then takes `lasts` to end; returns
    /// its guard, a receiver of its signal, and whether it has ended.
    fn probe(
        on_stop: OnStop,
        lasts: Duration,
    ) -> (TaskGuard, watch::Receiver<bool>, Arc<Mutex<bool>>) {
        let ended = Arc::new(Mutex::new(false));
        let mut signal = None;
        let flag = ended.clone();
        let guard = TaskGuard::spawn("probe", on_stop, |mut stopped| {
            signal = Some(stopped.clone());
            async move {
                let _ = stopped.wait_for(|&s| s).await;
                tokio::time::sleep(lasts).await;
                *flag.lock().unwrap() = true;
            }
        });
        (guard, signal.unwrap(), ended)
    }

    /// The order, as the drain sees it: when it starts, the sweeper and the job runner have
    /// been told to stop and the delivery worker has not; and `shutdown` returns only once
    /// the delivery worker has ended, after the drain.
    #[tokio::test]
    async fn shutdown_stops_sweeper_and_jobs_then_drains_then_stops_the_forwarder() {
        let (sweeper, sweeper_told, _) = probe(OnStop::Tell, Duration::ZERO);
        let (jobs, jobs_told, _) = probe(OnStop::Tell, Duration::ZERO);
        let (forwarder, forwarder_told, forwarder_ended) =
            probe(OnStop::AwaitEnd, Duration::from_millis(50));
        let (activity, activity_told, _) = probe(OnStop::Tell, Duration::ZERO);
        let tasks = Tasks {
            sweeper,
            jobs,
            forwarder: Some(forwarder),
            activity,
        };
        let seen = Mutex::new(None);
        let drain = async {
            // The shards take a while to drain; the worker must still run meanwhile.
            tokio::time::sleep(Duration::from_millis(20)).await;
            *seen.lock().unwrap() = Some([
                *sweeper_told.borrow(),
                *jobs_told.borrow(),
                *forwarder_told.borrow(),
            ]);
            7
        };
        assert_eq!(tasks.shutdown(drain).await, 7, "the drain's count");
        assert_eq!(
            *seen.lock().unwrap(),
            Some([true, true, false]),
            "[sweeper told, jobs told, forwarder told] when the drain ran"
        );
        assert!(*forwarder_told.borrow());
        assert!(
            *forwarder_ended.lock().unwrap(),
            "shutdown returned before the delivery worker ended"
        );
        assert!(!*activity_told.borrow(), "the activity stops with the drop");
        drop(tasks);
        assert!(*activity_told.borrow());
    }

    /// `Tell` does not wait; its drop aborts the task. `AwaitEnd` waits; its drop lets the
    /// task finish on its own.
    #[tokio::test]
    async fn tell_is_cut_at_drop_and_await_end_finishes() {
        let (told, _, told_ended) = probe(OnStop::Tell, Duration::from_millis(50));
        told.stop().await;
        assert!(!*told_ended.lock().unwrap(), "Tell does not wait");
        drop(told);
        let (left, _, left_ended) = probe(OnStop::AwaitEnd, Duration::from_millis(50));
        drop(left);
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(
            !*told_ended.lock().unwrap(),
            "a Tell task is aborted at drop"
        );
        assert!(
            *left_ended.lock().unwrap(),
            "an AwaitEnd task finishes after its guard drops"
        );
        let (awaited, _, awaited_ended) = probe(OnStop::AwaitEnd, Duration::from_millis(50));
        awaited.stop().await;
        assert!(*awaited_ended.lock().unwrap(), "AwaitEnd waits for the end");
        awaited.stop().await;
    }
}
