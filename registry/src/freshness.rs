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
//! A query that fails (PostgreSQL out of reach) answers the same way: every read whose request
//! began before it was sent fails with it, rather than queueing behind one another's attempts,
//! each of which may take a connect timeout. So during an outage a request waits for at most
//! the query in flight and the next one.
//!
//! On a registry of its own there is nothing to ask: its writer is the only one.

use std::future::Future;
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};

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
#[derive(Default)]
struct Latest {
    /// The latest answer, and when its query was sent.
    answer: Option<(Instant, u64)>,
    /// The latest failure, and when its query was sent.
    failure: Option<(Instant, String)>,
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
        if let Some(said) = self.said_since(began) {
            return said;
        }
        let _turn = self.turn.lock().await;
        // The query that held the turn may have been sent after this read began.
        if let Some(said) = self.said_since(began) {
            return said;
        }
        let sent = Instant::now();
        let answer = query().await;
        let mut latest = self.latest.lock().expect("head queries lock");
        match &answer {
            Ok(head) => latest.answer = Some((sent, *head)),
            Err(error) => latest.failure = Some((sent, error.to_string())),
        }
        answer
    }

    /// What a query sent since `began` said: its answer, or that it failed.
    fn said_since(&self, began: Instant) -> Option<Result<u64>> {
        let latest = self.latest.lock().expect("head queries lock");
        if let Some((_, head)) = latest.answer.filter(|(sent, _)| *sent >= began) {
            return Some(Ok(head));
        }
        let (_, failure) = latest.failure.as_ref().filter(|(sent, _)| *sent >= began)?;
        Some(Err(Error::SharedLogUnreachable(failure.clone())))
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

    #[tokio::test]
    async fn a_failed_query_answers_the_reads_that_began_before_it_was_sent() {
        let heads = HeadQueries::default();
        let sent = AtomicU64::new(0);
        let before = Instant::now();
        let failed = heads.head(|| async { Err(crate::Error::WriterStopped) }).await;
        assert!(matches!(failed, Err(crate::Error::WriterStopped)), "{failed:?}");
        // A request that began before it was sent gets its failure without asking again
        // (during an outage, requests do not queue behind one another's connect timeouts).
        let shared = as_of(before, heads.head(|| counting(&sent))).await;
        assert!(matches!(shared, Err(crate::Error::SharedLogUnreachable(_))), "{shared:?}");
        assert_eq!(sent.load(Ordering::SeqCst), 0);
        // A read that begins after it asks.
        assert_eq!(heads.head(|| counting(&sent)).await.unwrap(), 1);
    }
}
