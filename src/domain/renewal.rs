//! The lease renewal pass: renews, through their binders, the leases of live bindings whose
//! `renew_before` falls before the next pass, and records the new `expires_at` /
//! `renew_before` (version-checked). A lease that can no longer be extended (capped at the
//! role's `max_ttl`, not renewable, expired or revoked) is recorded as final: `renew_before`
//! is cleared so the pass stops listing it, and `expires_at` keeps the lease's real end, so
//! fetch binding reports `metadata.expires_at` in the past once it is over (the platform
//! rotates). Runs as a `serve` background task and inside the scheduled function. Must not
//! import adapter crates.

use std::fmt;

use serde::Serialize;
use time::OffsetDateTime;

use super::binding::{Binding, BindingState, LeaseTimes};
use super::error::StoreError;
use super::ports::{BinderRegistry, Store};

/// What one renewal pass did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct RenewalReport {
    /// Bindings listed as due.
    pub due: usize,
    /// Leases extended (still renewable afterwards).
    pub renewed: usize,
    /// Leases that cannot be extended any further (capped, not renewable) but are still live.
    pub final_: usize,
    /// Leases found over (expired or revoked): the binding now reports it.
    pub expired: usize,
    /// Bindings left for the next pass (binder unavailable, unknown binder, write conflict).
    pub failed: usize,
}

impl fmt::Display for RenewalReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} due, {} renewed, {} at their end, {} expired, {} left for the next pass",
            self.due, self.renewed, self.final_, self.expired, self.failed
        )
    }
}

/// What the binder's answer means for the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Renewed,
    Final,
    Expired,
}

/// Applies a renewal answer to a binding; returns the outcome.
fn apply(binding: &mut Binding, lease: LeaseTimes, now: OffsetDateTime) -> Outcome {
    if lease.expires_at <= now {
        // Over: keep the earlier of the recorded end and now, so the end reported is real.
        let end = binding.expires_at.map_or(now, |t| t.min(now));
        binding.expires_at = Some(end);
        binding.renew_before = None;
        Outcome::Expired
    } else if lease.renew_before >= lease.expires_at {
        binding.expires_at = Some(lease.expires_at);
        binding.renew_before = None;
        Outcome::Final
    } else {
        binding.expires_at = Some(lease.expires_at);
        binding.renew_before = Some(lease.renew_before);
        Outcome::Renewed
    }
}

/// Renews every bound binding whose `renew_before` is before `now + horizon` (use the pass
/// interval as horizon, so nothing runs out between two passes). Per-binding failures are
/// logged and counted, never fatal; only a failure to list the bindings is an error.
pub async fn renew_due(
    store: &dyn Store,
    binders: &BinderRegistry,
    now: OffsetDateTime,
    horizon: time::Duration,
) -> Result<RenewalReport, StoreError> {
    let due = store.bindings_due(now + horizon).await?;
    let mut report = RenewalReport {
        due: due.len(),
        ..RenewalReport::default()
    };
    for mut binding in due {
        if binding.state != BindingState::Bound || binding.renew_before.is_none() {
            continue;
        }
        let Some(binder) = binders.get(&binding.binder) else {
            tracing::warn!(
                instance_id = %binding.instance_id,
                binding_id = %binding.id,
                binder = %binding.binder,
                "lease renewal: the binding's binder is not configured here"
            );
            report.failed += 1;
            continue;
        };
        let outcome = match binder.renew(&binding).await {
            Ok(Some(lease)) => apply(&mut binding, lease, now),
            Ok(None) => {
                // Nothing to renew: stop listing it, its end stays as recorded.
                binding.renew_before = None;
                Outcome::Final
            }
            Err(e) => {
                tracing::warn!(
                    instance_id = %binding.instance_id,
                    binding_id = %binding.id,
                    error = %e,
                    "lease renewal failed; retried on the next pass"
                );
                report.failed += 1;
                continue;
            }
        };
        match store.update_binding(&binding).await {
            Ok(_) => match outcome {
                Outcome::Renewed => report.renewed += 1,
                Outcome::Final => report.final_ += 1,
                Outcome::Expired => report.expired += 1,
            },
            Err(e) => {
                // A conflict means an unbind or another pass got there first.
                tracing::warn!(
                    instance_id = %binding.instance_id,
                    binding_id = %binding.id,
                    error = %e,
                    "lease renewed but the binding record was not updated"
                );
                report.failed += 1;
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::Duration;

    fn binding(now: OffsetDateTime) -> Binding {
        serde_json::from_value(serde_json::json!({
            "instance_id": "i-1", "id": "b-1", "service_id": "s", "plan_id": "p",
            "request_hash": "h", "binder": "vault", "state": "bound",
            "expires_at": (now + Duration::seconds(6)).format(&time::format_description::well_known::Rfc3339).unwrap(),
            "renew_before": (now + Duration::seconds(4)).format(&time::format_description::well_known::Rfc3339).unwrap(),
            "created_at": now.format(&time::format_description::well_known::Rfc3339).unwrap(),
        }))
        .unwrap()
    }

    #[test]
    fn a_renewed_lease_moves_both_times_forward() {
        let now = OffsetDateTime::now_utc();
        let mut b = binding(now);
        let lease = LeaseTimes {
            expires_at: now + Duration::seconds(60),
            renew_before: now + Duration::seconds(40),
        };
        assert_eq!(apply(&mut b, lease, now), Outcome::Renewed);
        assert_eq!(b.expires_at, Some(lease.expires_at));
        assert_eq!(b.renew_before, Some(lease.renew_before));
    }

    #[test]
    fn a_lease_that_is_over_reports_an_end_in_the_past_and_is_not_listed_again() {
        let now = OffsetDateTime::now_utc();
        let mut b = binding(now - Duration::seconds(30));
        let recorded = b.expires_at.unwrap();
        let lease = LeaseTimes {
            expires_at: now,
            renew_before: now,
        };
        assert_eq!(apply(&mut b, lease, now), Outcome::Expired);
        assert_eq!(b.expires_at, Some(recorded));
        assert!(b.expires_at.unwrap() < now);
        assert_eq!(b.renew_before, None);
    }

    #[test]
    fn a_lease_without_room_to_renew_is_final() {
        let now = OffsetDateTime::now_utc();
        let mut b = binding(now);
        let end = now + Duration::seconds(10);
        let lease = LeaseTimes {
            expires_at: end,
            renew_before: end,
        };
        assert_eq!(apply(&mut b, lease, now), Outcome::Final);
        assert_eq!(b.expires_at, Some(end));
        assert_eq!(b.renew_before, None);
    }
}
