//! The writer's queue of work. A job whose caller waits wakes the writer at once; a detached
//! job (a retrieval record) wakes it only when it sleeps with nothing to do, not while it
//! gathers detached jobs into a batch (see [`JobQueue::linger`]).
//!
//! Why not a channel: a channel wakes a waiting receiver on every send. While the writer
//! gathers the records of small GETs for a few milliseconds, every GET's record woke the
//! writer thread to queue it and put it back to sleep: two thread switches per GET, on a
//! machine where the GETs themselves need the cores.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use super::Queued;

/// Work for the writer, in the order it was queued.
pub(super) struct JobQueue {
    state: Mutex<State>,
    wake: Condvar,
}

struct State {
    queued: VecDeque<Queued>,
    /// Queued work other than detached jobs: what ends a linger.
    waited: usize,
    writer: WriterState,
    closed: bool,
}

/// What the writer is doing, which decides whether a new job must wake it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriterState {
    /// Running a batch: it looks at the queue before it sleeps again.
    Busy,
    /// Asleep until anything is queued.
    Idle,
    /// Gathering detached jobs until a deadline, or until work that someone waits for.
    Lingering,
}

impl JobQueue {
    pub(super) fn new() -> Self {
        let state = State { queued: VecDeque::new(), waited: 0, writer: WriterState::Busy, closed: false };
        Self { state: Mutex::new(state), wake: Condvar::new() }
    }

    /// Queues `work`, or gives it back once the queue is closed.
    pub(super) fn push(&self, work: Queued) -> Result<(), Queued> {
        let mut state = self.lock();
        if state.closed {
            return Err(work);
        }
        let detached = work.is_detached();
        let wake = match state.writer {
            WriterState::Busy => false,
            WriterState::Idle => true,
            WriterState::Lingering => !detached,
        };
        if !detached {
            state.waited += 1;
        }
        state.queued.push_back(work);
        drop(state);
        if wake {
            self.wake.notify_one();
        }
        Ok(())
    }

    /// Refuses new work; what is queued is still handed out.
    pub(super) fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }

    /// Refuses new work and drops what is queued, so that its callers hear that the writer
    /// stopped: for a writer that exits without draining the queue (a job panicked).
    pub(super) fn abandon(&self) {
        let abandoned = {
            let mut state = self.lock();
            state.closed = true;
            state.waited = 0;
            std::mem::take(&mut state.queued)
        };
        // Dropped outside the lock: a dropped job drops its caller's reply channel.
        drop(abandoned);
    }

    /// Waits for work and takes queued items into `batch` until it holds `limit`; `false`
    /// once the queue is closed and empty.
    pub(super) fn wait_and_take(&self, batch: &mut Vec<Queued>, limit: usize) -> bool {
        let mut state = self.lock();
        while state.queued.is_empty() {
            if state.closed {
                return false;
            }
            state.writer = WriterState::Idle;
            state = self.wake.wait(state).unwrap_or_else(PoisonError::into_inner);
        }
        state.writer = WriterState::Busy;
        Self::take_from(&mut state, batch, limit);
        true
    }

    /// Takes what is queued into `batch`, without waiting, until it holds `limit` items.
    pub(super) fn take(&self, batch: &mut Vec<Queued>, limit: usize) {
        Self::take_from(&mut self.lock(), batch, limit);
    }

    /// Waits until `deadline`, or until work other than detached jobs is queued, or the queue
    /// is closed; detached jobs queued meanwhile do not wake the writer.
    pub(super) fn linger(&self, deadline: Instant) {
        let mut state = self.lock();
        state.writer = WriterState::Lingering;
        while state.waited == 0 && !state.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            state = self.wake.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        state.writer = WriterState::Busy;
    }

    fn take_from(state: &mut State, batch: &mut Vec<Queued>, limit: usize) {
        while batch.len() < limit
            && let Some(work) = state.queued.pop_front()
        {
            if !work.is_detached() {
                state.waited -= 1;
            }
            batch.push(work);
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Nothing panics while it holds the lock, and `Drop` of a registry closes the queue.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    fn detached() -> Queued {
        Queued::Detached(Box::new(|_| (true, Box::new(|_| {}))))
    }

    fn waited() -> Queued {
        Queued::CatchUp(Box::new(|_| {}))
    }

    fn kinds(batch: &[Queued]) -> Vec<&'static str> {
        batch.iter().map(|work| if work.is_detached() { "detached" } else { "waited" }).collect()
    }

    /// Runs `writer` on a thread of its own, as the registry's writer runs; `join` fails the
    /// test rather than hang it when the thread is never woken.
    struct WriterThread<T>(mpsc::Receiver<T>);

    impl<T: Send + 'static> WriterThread<T> {
        fn spawn(writer: impl FnOnce() -> T + Send + 'static) -> Self {
            let (done, result) = mpsc::channel();
            std::thread::spawn(move || done.send(writer()));
            Self(result)
        }

        fn join(self) -> T {
            self.0.recv_timeout(Duration::from_secs(60)).expect("the writer thread was never woken")
        }
    }

    /// Waits until the writer thread sleeps in the state `want`.
    fn until_writer_is(queue: &JobQueue, want: WriterState) {
        while queue.lock().writer != want {
            std::thread::yield_now();
        }
    }

    /// A writer that takes one detached job and lingers, with a deadline that only the queue
    /// can beat within a test, then runs `after`; returned once it lingers.
    fn lingering_writer<T: Send + 'static>(
        queue: &Arc<JobQueue>,
        after: impl FnOnce(&JobQueue, &mut Vec<Queued>) -> T + Send + 'static,
    ) -> WriterThread<T> {
        queue.push(detached()).map_err(drop).unwrap();
        let writer = WriterThread::spawn({
            let queue = Arc::clone(queue);
            move || {
                let mut batch = Vec::new();
                assert!(queue.wait_and_take(&mut batch, 100));
                queue.linger(Instant::now() + Duration::from_secs(3600));
                after(&queue, &mut batch)
            }
        });
        until_writer_is(queue, WriterState::Lingering);
        writer
    }

    #[test]
    fn a_linger_is_ended_by_waited_work_only_and_the_order_is_kept() {
        let queue = Arc::new(JobQueue::new());
        let writer = lingering_writer(&queue, |queue, batch| {
            queue.take(batch, 100);
            std::mem::take(batch)
        });
        for _ in 0..3 {
            queue.push(detached()).map_err(drop).unwrap();
        }
        // Detached jobs neither wake the writer nor end its linger.
        assert!(queue.lock().writer == WriterState::Lingering);
        queue.push(waited()).map_err(drop).unwrap();
        let batch = writer.join();
        assert_eq!(kinds(&batch), ["detached", "detached", "detached", "detached", "waited"]);
        assert_eq!(queue.lock().waited, 0);
    }

    #[test]
    fn an_idle_writer_is_woken_by_detached_work() {
        let queue = Arc::new(JobQueue::new());
        let writer = WriterThread::spawn({
            let queue = Arc::clone(&queue);
            move || {
                let mut batch = Vec::new();
                assert!(queue.wait_and_take(&mut batch, 100));
                batch
            }
        });
        until_writer_is(&queue, WriterState::Idle);
        queue.push(detached()).map_err(drop).unwrap();
        assert_eq!(kinds(&writer.join()), ["detached"]);
    }

    #[test]
    fn closing_wakes_a_lingering_writer_then_an_idle_one() {
        let queue = Arc::new(JobQueue::new());
        // Closed and empty: the writer stops.
        let writer = lingering_writer(&queue, |queue, batch| queue.wait_and_take(batch, 100));
        queue.close();
        assert!(!writer.join());

        let queue = Arc::new(JobQueue::new());
        let writer = WriterThread::spawn({
            let queue = Arc::clone(&queue);
            move || queue.wait_and_take(&mut Vec::new(), 100)
        });
        until_writer_is(&queue, WriterState::Idle);
        queue.close();
        assert!(!writer.join());
    }

    #[test]
    fn a_closed_queue_hands_out_what_it_holds_in_order_then_stops() {
        let queue = JobQueue::new();
        for work in [waited(), detached(), waited()] {
            queue.push(work).map_err(drop).unwrap();
        }
        queue.close();
        assert!(queue.push(detached()).is_err());
        let mut batch = Vec::new();
        assert!(queue.wait_and_take(&mut batch, 2));
        assert_eq!(kinds(&batch), ["waited", "detached"]);
        let mut rest = Vec::new();
        assert!(queue.wait_and_take(&mut rest, 100));
        assert_eq!((kinds(&rest), queue.lock().waited), (vec!["waited"], 0));
        assert!(!queue.wait_and_take(&mut rest, 100));
    }

    #[test]
    fn an_abandoned_queue_drops_its_work_and_refuses_more() {
        let queue = JobQueue::new();
        let (reply, replied) = mpsc::channel::<()>();
        queue
            .push(Queued::CatchUp(Box::new(move |_| {
                let _ = reply.send(());
            })))
            .map_err(drop)
            .unwrap();
        queue.abandon();
        // The caller's reply channel is gone with the job: it hears that nobody will answer.
        assert_eq!(replied.recv(), Err(mpsc::RecvError));
        assert!(queue.push(waited()).is_err());
        assert!(!queue.wait_and_take(&mut Vec::new(), 100));
    }
}
