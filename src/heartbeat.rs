//! A timer that fires every second and does nothing, so that registering a request's timers
//! costs no system call.
//!
//! Why: tokio's time driver wakes its I/O driver (an `eventfd` write, then an extra
//! `epoll_wait` return) whenever a timer is registered with a deadline earlier than the
//! driver's next planned wake-up, even on a current-thread runtime that is busy polling the
//! very task registering it (tokio-rs/tokio#5207). At moderate load, when nothing else is
//! in flight, a request's per-try timeout is usually the earliest timer, so each request paid
//! one `write` and one more `epoll_wait`: 7.6 system calls per proxied request instead of 5.8
//! (docs/performance.md). With this timer due within a second, the driver's next wake-up is
//! never further away than that, so timeouts of a second or more register without a wake.
//! It costs one wake-up per second.

use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

/// How often the heartbeat fires: the shortest timeout that registers without waking the
/// driver. Per-try and request timeouts are usually seconds; header reads, 10 s.
pub const PERIOD: Duration = Duration::from_secs(1);

/// Runs the heartbeat on the current runtime until `stop` is cancelled.
pub fn spawn(stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(PERIOD);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn ticks_until_stopped() {
        let stop = CancellationToken::new();
        let task = spawn(stop.clone());
        // Paused time advances to the next due timer whenever the runtime is idle, so a
        // short sleep returns after the heartbeat has ticked a few times; the task is alive.
        tokio::time::sleep(PERIOD * 3).await;
        assert!(!task.is_finished());
        stop.cancel();
        task.await.expect("the heartbeat ends cleanly when stopped");
    }
}
