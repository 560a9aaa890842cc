//! The deadline of the OSB request being served: the HTTP layer runs each request inside
//! [`scope`], and adapters ask [`remaining`] how much of it is left, so that all calls one
//! request makes to a backend, retries included, end in time (API Gateway stops waiting
//! after 30 s; a platform should get a timely 503 or 202, never a hung request). Outside a
//! request (catalog sync, renewal pass, CLI) there is no deadline.

use std::future::Future;
use std::time::{Duration, Instant};

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Runs `fut` with a deadline `budget` from now (no deadline when `budget` is `None`).
pub async fn scope<F: Future>(budget: Option<Duration>, fut: F) -> F::Output {
    match budget.and_then(|b| Instant::now().checked_add(b)) {
        Some(at) => DEADLINE.scope(at, fut).await,
        None => fut.await,
    }
}

/// Time left before the current request's deadline; `None` outside a request scope.
pub fn remaining() -> Option<Duration> {
    DEADLINE
        .try_with(|at| at.saturating_duration_since(Instant::now()))
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn remaining_is_none_outside_and_bounded_inside_a_scope() {
        assert_eq!(remaining(), None);
        let left = scope(Some(Duration::from_secs(5)), async { remaining() }).await;
        assert!(left.is_some_and(|l| l <= Duration::from_secs(5) && l > Duration::from_secs(4)));
        assert_eq!(scope(None, async { remaining() }).await, None);
        let spent = scope(Some(Duration::ZERO), async { remaining() }).await;
        assert_eq!(spent, Some(Duration::ZERO));
    }
}
