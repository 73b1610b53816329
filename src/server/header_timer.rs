//! hyper's header-read timer for one HTTP/1.1 client connection, reusing one tokio timer for
//! every request on it.
//!
//! Why: hyper asks its timer for a new sleep each time it starts reading a request head and
//! drops it once the head is parsed. With hyper-util's `TokioTimer` that is, per request, a
//! boxed tokio `Sleep` created, inserted into the timer wheel under the driver's lock, then
//! removed under it again (about 1k instructions of the 43k a request cost, callgrind).
//! Here the connection keeps one tokio `Sleep`; each new deadline is later than the last,
//! which tokio records with one atomic store while the entry stays where it is in the
//! wheel, and the entry is touched again only when its old slot comes due.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::rt::{Sleep, Timer};
use tokio::time::Instant;

use crate::upstream::try_timer::TryTimer;

/// The timer of one connection, with its one tokio `Sleep` (the same reusable slot as the
/// connection's per-try timer, a separate instance).
#[derive(Debug, Default)]
pub struct HeaderTimer {
    slot: TryTimer,
    /// The latest the first head may end: one header-read timeout after the accept. rampart
    /// waits for the first bytes (the HTTP/2 preface peek) before hyper starts its timer,
    /// and that wait must not nearly double the time a silent or slow client is given.
    first_by: Option<Instant>,
    /// The first head's deadline has been handed out.
    first_done: AtomicBool,
}

impl HeaderTimer {
    /// The timer of a connection whose first head must be complete by `first_by`.
    pub fn first_by(first_by: Instant) -> Self {
        Self {
            first_by: Some(first_by),
            ..Self::default()
        }
    }
}

/// One header read's deadline. It takes the connection's `Sleep` on its first poll and
/// gives it back when hyper drops it; hyper holds at most one of these per connection at a
/// time.
struct HeaderSleep {
    slot: TryTimer,
    deadline: Instant,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Timer for HeaderTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until((Instant::now() + duration).into_std())
    }

    // hyper's trait speaks std's Instant; it is converted to tokio's at once.
    #[allow(clippy::disallowed_types)]
    fn sleep_until(&self, deadline: std::time::Instant) -> Pin<Box<dyn Sleep>> {
        let mut deadline = Instant::from_std(deadline);
        // hyper calls this once per head (it drops the sleep after each parsed head), so
        // the first call is the first head's.
        // A plain load for every later head: no locked read-modify-write per request.
        if let Some(first_by) = self.first_by
            && !self.first_done.load(Ordering::Relaxed)
        {
            self.first_done.store(true, Ordering::Relaxed);
            deadline = deadline.min(first_by);
        }
        Box::pin(HeaderSleep {
            slot: self.slot.clone(),
            deadline,
            sleep: None,
        })
    }

    #[allow(clippy::disallowed_types)]
    fn now(&self) -> std::time::Instant {
        Instant::now().into_std()
    }
}

impl Future for HeaderSleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // Every field is Unpin (the tokio `Sleep` is boxed).
        let this = self.get_mut();
        let deadline = this.deadline;
        let slot = &this.slot;
        this.sleep
            .get_or_insert_with(|| slot.take_or_new(deadline))
            .as_mut()
            .poll(cx)
    }
}

impl Drop for HeaderSleep {
    fn drop(&mut self) {
        if let Some(sleep) = self.sleep.take() {
            self.slot.put(sleep);
        }
    }
}

impl Sleep for HeaderSleep {}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;

    use super::*;

    /// Polls `sleep` once.
    async fn poll_once(sleep: &mut Pin<Box<dyn Sleep>>) -> Poll<()> {
        poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await
    }

    #[tokio::test(start_paused = true)]
    async fn each_sleep_keeps_its_own_deadline_on_the_shared_timer() {
        let timer = HeaderTimer::default();
        let second = Duration::from_secs(1);

        // The first head read: pending, then due at its deadline.
        let mut first = timer.sleep(second * 10);
        assert!(poll_once(&mut first).await.is_pending());
        tokio::time::advance(second * 9).await;
        assert!(poll_once(&mut first).await.is_pending());
        drop(first);

        // The next request's read starts later and ends later, though the shared tokio
        // timer was armed for the first deadline.
        let mut next = timer.sleep(second * 10);
        tokio::time::advance(second * 2).await;
        assert!(
            poll_once(&mut next).await.is_pending(),
            "past the first deadline, before its own"
        );
        tokio::time::advance(second * 8).await;
        assert!(poll_once(&mut next).await.is_ready());
        drop(next);

        // After it fired, the timer serves a fresh deadline again.
        let mut third = timer.sleep(second);
        assert!(poll_once(&mut third).await.is_pending());
        tokio::time::advance(second).await;
        third.as_mut().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_head_ends_by_its_bound_and_later_ones_get_their_whole_time() {
        let accepted = Instant::now();
        let timeout = Duration::from_secs(10);
        let timer = HeaderTimer::first_by(accepted + timeout);
        // hyper starts reading the first head 6 s after the accept (the preface peek).
        tokio::time::advance(Duration::from_secs(6)).await;
        timer.sleep(timeout).await;
        assert_eq!(accepted.elapsed(), timeout);
        // The next head gets its whole 10 s.
        let started = Instant::now();
        timer.sleep(timeout).await;
        assert_eq!(started.elapsed(), timeout);
    }

    #[tokio::test(start_paused = true)]
    async fn a_pending_sleep_wakes_its_task_at_its_own_deadline() {
        let timer = HeaderTimer::default();
        let started = Instant::now();
        // Registers the shared tokio timer for t=3s, then the head arrives at t=1s.
        let mut first = timer.sleep(Duration::from_secs(3));
        assert!(poll_once(&mut first).await.is_pending());
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(first);
        // The next read's deadline (t=11s) extends the registered timer. Awaited, so only a
        // wake-up from the timer finishes it: not at t=3s, where the entry was, but at t=11s.
        timer.sleep(Duration::from_secs(10)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(11));
    }
}
