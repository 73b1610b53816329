//! The per-try timeout of one client connection's requests, on one tokio timer reused for
//! every try.
//!
//! Why: `tokio::time::timeout_at` inserts a timer into the wheel under the driver's lock
//! when the try first waits and removes it again when the try ends, about 500 instructions
//! per request (callgrind). A connection's tries mostly come one after another, each with a
//! later deadline than the last, and tokio records a later deadline on a registered timer
//! with one atomic store; the entry is touched again only when its old slot comes due. The
//! same idea as `server::header_timer`, for the other timer every request arms.
//!
//! Only HTTP/1 connections use it: their requests run one at a time on the connection's
//! task, so the timer's registered waker is always that task's. Tries that overlap
//! (hedging) find the timer taken and use a timer of their own, like `timeout_at`.
//!
//! [`timeout_at`] with no shared timer is also the request deadline around admission and
//! body buffering: those usually finish on their first poll, and a timer is created only
//! for a future that waits (creating and dropping one costs about 500 instructions).

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::time::{Instant, Sleep};

/// One connection's reusable try timer; clones share it.
#[derive(Clone, Debug, Default)]
pub struct TryTimer {
    /// `None` while a try has it, or before the first try that waited.
    slot: Arc<Mutex<Option<Pin<Box<Sleep>>>>>,
}

/// The deadline passed before the future finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl TryTimer {
    /// `fut`'s output, or [`Elapsed`] once `deadline` passes first. Answers as
    /// `tokio::time::timeout_at` does: `fut` is polled before the clock is looked at, and a
    /// future that finishes on its first poll needs no timer at all.
    pub fn timeout_at<F: Future>(&self, deadline: Instant, fut: F) -> Timeout<'_, F> {
        timeout_at(Some(self), deadline, fut)
    }

    /// The shared timer set to `deadline`, or a new one when another user has it.
    pub(crate) fn take_or_new(&self, deadline: Instant) -> Pin<Box<Sleep>> {
        self.take(deadline)
            .unwrap_or_else(|| Box::pin(tokio::time::sleep_until(deadline)))
    }

    /// The shared timer set to `deadline`, if no other try has it.
    fn take(&self, deadline: Instant) -> Option<Pin<Box<Sleep>>> {
        let mut sleep = self.lock().take()?;
        if sleep.deadline() != deadline {
            // Later than the registered deadline (the usual case): one atomic store.
            sleep.as_mut().reset(deadline);
        }
        Some(sleep)
    }

    /// Keeps `sleep` for the next try unless one is kept already.
    pub(crate) fn put(&self, sleep: Pin<Box<Sleep>>) {
        let mut slot = self.lock();
        if slot.is_none() {
            *slot = Some(sleep);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Pin<Box<Sleep>>>> {
        // Uncontended but for overlapping tries; never held across an await.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// [`TryTimer::timeout_at`] on `timer`'s shared timer, or on a timer of its own when there
/// is no `timer` (a hedged pair of tries).
pub fn timeout_at<F: Future>(
    timer: Option<&TryTimer>,
    deadline: Instant,
    fut: F,
) -> Timeout<'_, F> {
    Timeout {
        fut,
        timer,
        deadline,
        sleep: None,
    }
}

pin_project_lite::pin_project! {
    /// A future with a deadline; the timer is taken on the first poll that waits and given
    /// back when this is dropped, finished or not. A future of its own rather than an async
    /// block: that would hold `fut` twice over and poll it twice on its first wait.
    #[must_use = "futures do nothing unless polled"]
    pub struct Timeout<'a, F> {
        #[pin]
        fut: F,
        timer: Option<&'a TryTimer>,
        deadline: Instant,
        sleep: Option<Pin<Box<Sleep>>>,
    }

    impl<F> PinnedDrop for Timeout<'_, F> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let (Some(timer), Some(sleep)) = (this.timer, this.sleep.take()) {
                timer.put(sleep);
            }
        }
    }
}

impl<F: Future> Future for Timeout<'_, F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let had_budget = tokio::task::coop::has_budget_remaining();
        if let Poll::Ready(out) = this.fut.poll(cx) {
            return Poll::Ready(Ok(out));
        }
        let deadline = *this.deadline;
        let sleep = this.sleep.get_or_insert_with(|| match this.timer {
            Some(timer) => timer.take_or_new(deadline),
            None => Box::pin(tokio::time::sleep_until(deadline)),
        });
        if had_budget && !tokio::task::coop::has_budget_remaining() {
            // `fut` used up the task's budget, so the timer would answer Pending: look at
            // the clock instead, or a future that always exhausts the budget (a fast
            // upload) would never time out. tokio's `Timeout` has the same escape.
            if Instant::now() >= deadline {
                return Poll::Ready(Err(Elapsed));
            }
            // The operation that spent the last of the budget did not ask for a wake-up, and
            // the timer was not polled: be polled again, with a fresh budget, to arm it.
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        sleep.as_mut().poll(cx).map(|()| Err(Elapsed))
    }
}

#[cfg(test)]
mod tests {
    use std::future::poll_fn;
    use std::pin::pin;
    use std::time::Duration;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[tokio::test(start_paused = true)]
    async fn without_a_shared_timer_it_answers_like_timeout_at() {
        let past = Instant::now();
        tokio::time::advance(Duration::from_secs(1)).await;
        // Ready at once: its output, even past the deadline, as `timeout_at` gives.
        assert_eq!(timeout_at(None, past, async { 7 }).await.unwrap(), 7);
        assert_eq!(tokio::time::timeout_at(past, async { 7 }).await.unwrap(), 7);

        // Pending, then done before the deadline: its output, when it finished.
        let started = Instant::now();
        let deadline = started + Duration::from_secs(5);
        let slow = async {
            tokio::time::sleep(Duration::from_secs(2)).await;
            8
        };
        assert_eq!(timeout_at(None, deadline, slow).await.unwrap(), 8);
        assert_eq!(started.elapsed(), Duration::from_secs(2));

        // Never done: elapsed at the deadline, not before.
        let never = std::future::pending::<()>();
        assert!(timeout_at(None, deadline, never).await.is_err());
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn answers_like_timeout_at_on_one_reused_timer() {
        let timer = TryTimer::default();
        let started = Instant::now();

        // Ready at once, even past its deadline: the output, and no timer is created.
        assert_eq!(timer.timeout_at(started, async { 7 }).await, Ok(7));
        assert!(timer.lock().is_none());

        // Done before the deadline: the output, when it finished; the timer is kept.
        let slow = async {
            tokio::time::sleep(SECOND * 2).await;
            8
        };
        assert_eq!(timer.timeout_at(started + SECOND * 5, slow).await, Ok(8));
        assert_eq!(started.elapsed(), SECOND * 2);
        assert!(timer.lock().is_some());

        // The next try's later deadline moves the kept timer: it fires then, not at the
        // first try's deadline (t=5s).
        let never = std::future::pending::<()>();
        assert_eq!(
            timer.timeout_at(started + SECOND * 9, never).await,
            Err(Elapsed)
        );
        assert_eq!(started.elapsed(), SECOND * 9);

        // After firing, and with an earlier deadline than the one it last had, it is
        // armed again.
        let never = std::future::pending::<()>();
        let deadline = Instant::now() + SECOND;
        assert_eq!(timer.timeout_at(deadline, never).await, Err(Elapsed));
        assert_eq!(started.elapsed(), SECOND * 10);
    }

    #[tokio::test(start_paused = true)]
    async fn overlapping_tries_each_keep_their_own_deadline() {
        let timer = TryTimer::default();
        let started = Instant::now();
        let first = timer.timeout_at(started + SECOND * 3, std::future::pending::<()>());
        let second = async {
            // Starts once the first holds the shared timer.
            tokio::task::yield_now().await;
            timer
                .timeout_at(started + SECOND, std::future::pending::<()>())
                .await
        };
        let (first, second) = tokio::join!(
            async {
                let r = first.await;
                (r, started.elapsed())
            },
            async {
                let r = second.await;
                (r, started.elapsed())
            }
        );
        assert_eq!(first, (Err(Elapsed), SECOND * 3));
        assert_eq!(second, (Err(Elapsed), SECOND));
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_exhausts_the_budget_still_times_out() {
        let timer = TryTimer::default();
        let started = Instant::now();
        // Spends the task's whole budget on every poll and asks to run again, like an
        // upload to a fast upstream: a timer polled after it would always say Pending.
        let busy = poll_fn(|cx| {
            while tokio::task::coop::has_budget_remaining() {
                let _ = pin!(tokio::task::consume_budget()).poll(cx);
            }
            cx.waker().wake_by_ref();
            Poll::<()>::Pending
        });
        let timed = timer.timeout_at(started + SECOND, busy);
        let clock = async {
            tokio::time::advance(SECOND * 2).await;
            // Many task polls, each with a fresh budget, for the deadline to be noticed.
            for _ in 0..100 {
                tokio::task::yield_now().await;
            }
        };
        tokio::select! {
            biased;
            result = timed => assert_eq!(result, Err(Elapsed)),
            () = clock => panic!("the deadline passed unnoticed"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_future_that_spends_the_last_of_the_budget_and_waits_still_times_out() {
        let timer = TryTimer::default();
        let started = Instant::now();
        // On its first poll, takes the budget to exactly zero (no wake-up is asked for on
        // the way) and then waits on something outside tokio that never wakes it.
        let mut first = true;
        let quiet = poll_fn(|cx| {
            if std::mem::take(&mut first) {
                while tokio::task::coop::has_budget_remaining() {
                    let _ = pin!(tokio::task::consume_budget()).poll(cx);
                }
            }
            Poll::<()>::Pending
        });
        let timed = timer.timeout_at(started + SECOND, quiet);
        // A hang would otherwise be the failure; this bound reports it instead.
        let outcome = tokio::time::timeout(SECOND * 10, timed).await;
        assert_eq!(outcome, Ok(Err(Elapsed)));
        assert_eq!(started.elapsed(), SECOND);
    }
}
