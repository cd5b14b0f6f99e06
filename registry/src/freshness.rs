//! How current a gateway's replica of a shared log must be for a read, and one query of the
//! shared head for all the reads that need one at the same time.
//!
//! S3 promises read-after-write: a request that begins after a write was acknowledged, by any
//! gateway, sees that write. So a read needs the shared head as it stood at some instant after
//! its *request* began, not after the read itself: once one read of a request has caught the
//! replica up to such a head, the request's later reads need not ask again (the replica only
//! moves forward). And any query of the head sent after a request began answers it, so reads
//! that wait together share one query: while one is in flight the others queue, and the next
//! query answers every read that began before it was sent.
//!
//! A query that fails (PostgreSQL out of reach) answers nobody, and the reads that waited for
//! it do not queue behind one another's attempts, each of which may take a connect timeout:
//! each asks on its own, at once, and fails or succeeds by itself.
//!
//! On a registry of its own there is nothing to ask: its writer is the only one.

use std::future::Future;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::Result;

tokio::task_local! {
    /// When the request a task serves began.
    static REQUEST_BEGAN: Instant;
}

/// Runs `request` as a request that began at `began`: its reads of a shared log see every
/// write any gateway acknowledged before `began`. Reads outside such a scope (and in tasks it
/// spawns) need every write acknowledged before the read itself.
pub async fn as_of<F: Future>(began: Instant, request: F) -> F::Output {
    REQUEST_BEGAN.scope(began, request).await
}

/// The instant the current read must be current as of.
fn read_began() -> Instant {
    REQUEST_BEGAN.try_with(|began| *began).unwrap_or_else(|_| Instant::now())
}

/// The shared head's sequence as learnt by this gateway's reads, one query at a time.
#[derive(Default)]
pub(crate) struct HeadQueries {
    latest: Mutex<Latest>,
    /// Held while a query is in flight; waiters are served in turn (tokio's mutex is fair).
    turn: tokio::sync::Mutex<()>,
}

/// What the latest queries said.
#[derive(Default, Clone, Copy)]
struct Latest {
    /// The latest answer, and when its query was sent.
    answer: Option<(Instant, u64)>,
    /// When the latest query that failed came back with its error.
    failure: Option<Instant>,
}

impl HeadQueries {
    /// The head's sequence as it stood at some instant after the current read's request
    /// began: the answer of a query sent since then, or of one `query` sends now.
    pub(crate) async fn head<Q, F>(&self, query: Q) -> Result<u64>
    where
        Q: FnOnce() -> F,
        F: Future<Output = Result<u64>>,
    {
        let began = read_began();
        if let Some(head) = self.answered_since(began) {
            return Ok(head);
        }
        let turn = if self.failed_since(began) { None } else { Some(self.turn.lock().await) };
        // The query that held the turn may have been sent after this read began.
        if let Some(head) = self.answered_since(began) {
            return Ok(head);
        }
        // Or it failed: ask without waiting for a turn behind the other readers.
        let _turn = turn.filter(|_| !self.failed_since(began));
        let sent = Instant::now();
        let answer = query().await;
        let mut latest = self.latest.lock().expect("head queries lock");
        match answer {
            Ok(head) => {
                // Queries asked outside the turn may answer out of order: keep the newest.
                if latest.answer.is_none_or(|(newest, _)| newest < sent) {
                    latest.answer = Some((sent, head));
                }
            }
            Err(_) => latest.failure = Some(Instant::now()),
        }
        answer
    }

    fn answered_since(&self, began: Instant) -> Option<u64> {
        let latest = *self.latest.lock().expect("head queries lock");
        latest.answer.filter(|(sent, _)| *sent >= began).map(|(_, head)| head)
    }

    /// Whether a query failed while this read waited.
    fn failed_since(&self, began: Instant) -> bool {
        let latest = *self.latest.lock().expect("head queries lock");
        latest.failure.is_some_and(|failed| failed >= began)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::time::Duration;

    use super::*;

    /// A query that answers how many queries were sent so far, this one included.
    async fn counting(sent: &AtomicU64) -> Result<u64> {
        Ok(sent.fetch_add(1, Ordering::SeqCst) + 1)
    }

    #[tokio::test]
    async fn a_read_outside_a_request_never_takes_an_answer_sent_before_it() {
        let heads = HeadQueries::default();
        let sent = AtomicU64::new(0);
        assert_eq!(heads.head(|| counting(&sent)).await.unwrap(), 1);
        assert_eq!(heads.head(|| counting(&sent)).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn the_reads_of_a_request_share_an_answer_sent_after_it_began_and_no_earlier_one() {
        let heads = HeadQueries::default();
        let sent = AtomicU64::new(0);
        let before = Instant::now();
        assert_eq!(heads.head(|| counting(&sent)).await.unwrap(), 1);
        // A request that began before that query was sent: any later read of it may use it.
        let reads =
            async { (heads.head(|| counting(&sent)).await.unwrap(), heads.head(|| counting(&sent)).await.unwrap()) };
        assert_eq!(as_of(before, reads).await, (1, 1));
        // A request that begins after it was sent needs a query of its own.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let after = Instant::now();
        assert_eq!(as_of(after, heads.head(|| counting(&sent))).await.unwrap(), 2);
        assert_eq!(as_of(after, heads.head(|| counting(&sent))).await.unwrap(), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_that_wait_for_a_query_in_flight_share_the_next_one() {
        let heads = Arc::new(HeadQueries::default());
        let sent = Arc::new(AtomicU64::new(0));
        let release = Arc::new(tokio::sync::Notify::new());
        let in_flight = {
            let (heads, sent, release) = (Arc::clone(&heads), Arc::clone(&sent), Arc::clone(&release));
            tokio::spawn(async move {
                heads
                    .head(|| async {
                        release.notified().await;
                        counting(&sent).await
                    })
                    .await
            })
        };
        // On this one thread each task runs until it waits: the first read's query is then in
        // flight, and the later reads have begun and wait for their turn.
        tokio::task::yield_now().await;
        let waiting: Vec<_> = (0..3)
            .map(|_| {
                let (heads, sent) = (Arc::clone(&heads), Arc::clone(&sent));
                tokio::spawn(async move { heads.head(|| counting(&sent)).await })
            })
            .collect();
        tokio::task::yield_now().await;
        release.notify_one();
        assert_eq!(in_flight.await.unwrap().unwrap(), 1);
        for read in waiting {
            // They began after the first query was sent, so it cannot answer them; the next,
            // sent after they all began, answers all three.
            assert_eq!(read.await.unwrap().unwrap(), 2);
        }
        assert_eq!(sent.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn reads_that_waited_for_a_query_that_failed_ask_at_once_each_on_its_own() {
        let heads = Arc::new(HeadQueries::default());
        let release = Arc::new(tokio::sync::Notify::new());
        let failing = {
            let (heads, release) = (Arc::clone(&heads), Arc::clone(&release));
            tokio::spawn(async move {
                heads
                    .head(|| async move {
                        release.notified().await;
                        Err(crate::Error::WriterStopped)
                    })
                    .await
            })
        };
        tokio::task::yield_now().await;
        // Each waiting read's own query answers only once all three are asking together: were
        // they asked one at a time, the first would wait for ever.
        let together = Arc::new(tokio::sync::Barrier::new(3));
        let waiting: Vec<_> = (0..3u64)
            .map(|n| {
                let (heads, together) = (Arc::clone(&heads), Arc::clone(&together));
                tokio::spawn(async move {
                    heads
                        .head(|| async move {
                            together.wait().await;
                            Ok(10 + n)
                        })
                        .await
                })
            })
            .collect();
        tokio::task::yield_now().await;
        release.notify_one();
        assert!(failing.await.unwrap().is_err());
        let answers = tokio::time::timeout(Duration::from_secs(60), async {
            let mut answers = Vec::new();
            for read in waiting {
                answers.push(read.await.unwrap().unwrap());
            }
            answers
        })
        .await
        .expect("the reads asked together, not in turn");
        assert_eq!(answers, [10, 11, 12]);
    }
}
