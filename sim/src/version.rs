//! The emulated Cloudify manager version and every behaviour switch derived from it.
//!
//! Each predicate names the version boundary it encodes (see `reference/cloudify-api.md` §8),
//! so the rest of the simulator never compares version numbers itself.

use std::fmt;
use std::str::FromStr;

/// A Cloudify manager version, `major.minor.patch`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version(pub u16, pub u16, pub u16);

/// How `DELETE /deployments/{id}` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteMode {
    /// 4.3: the row is removed during the request; 200 + the deleted deployment.
    Sync200,
    /// 4.4 – 5.0: `delete_deployment_environment` starts; 200 + the (still existing) deployment.
    Async200,
    /// 5.1+: asynchronous; 204 without a body.
    Async204,
}

impl FromStr for Version {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split('.').collect();
        if parts.len() < 2 || parts.len() > 3 {
            return Err(format!("version `{s}` is not MAJOR.MINOR[.PATCH]"));
        }
        let mut nums = [0u16; 3];
        for (i, p) in parts.iter().enumerate() {
            nums[i] = p
                .parse()
                .map_err(|_| format!("version `{s}` is not MAJOR.MINOR[.PATCH]"))?;
        }
        let v = Version(nums[0], nums[1], nums[2]);
        if v < Version(4, 3, 0) || v >= Version(8, 0, 0) {
            return Err(format!("version `{s}` is outside 4.3 – 7.x"));
        }
        Ok(v)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

impl Version {
    const fn at_least(self, major: u16, minor: u16, patch: u16) -> bool {
        let o = Version(major, minor, patch);
        self.0 > o.0 || (self.0 == o.0 && (self.1 > o.1 || (self.1 == o.1 && self.2 >= o.2)))
    }

    /// Deployment IDs must begin with a letter: 4.4 – 5.2.
    pub const fn id_must_begin_with_letter(self) -> bool {
        self.at_least(4, 4, 0) && !self.at_least(6, 0, 0)
    }

    /// Inputs are validated synchronously in `PUT /deployments` (4.x/5.x); from 6.0 inside
    /// the `create_deployment_environment` execution.
    pub const fn validates_inputs_in_put(self) -> bool {
        !self.at_least(6, 0, 0)
    }

    /// 6.0+: `PUT /deployments` blocks until environment creation ends unless `async_create`.
    pub const fn put_blocks_on_environment(self) -> bool {
        self.at_least(6, 0, 0)
    }

    /// A failed environment creation left behind is replaced by the next PUT (6.0+).
    pub const fn put_replaces_failed_leftover(self) -> bool {
        self.at_least(6, 0, 0)
    }

    /// The answer of `DELETE /deployments/{id}`.
    pub const fn delete_mode(self) -> DeleteMode {
        if !self.at_least(4, 4, 0) {
            DeleteMode::Sync200
        } else if !self.at_least(5, 1, 0) {
            DeleteMode::Async200
        } else {
            DeleteMode::Async204
        }
    }

    /// `DELETE /deployments/{id}?force=` (5.1+); older versions only know `ignore_live_nodes`.
    pub const fn delete_has_force(self) -> bool {
        self.at_least(5, 1, 0)
    }

    /// `DELETE ?ignore_live_nodes=` is still accepted (up to 5.1).
    pub const fn delete_has_ignore_live_nodes(self) -> bool {
        !self.at_least(5, 2, 0)
    }

    /// The `queued` execution status and the `queue` flag (4.5+).
    pub const fn has_queue(self) -> bool {
        self.at_least(4, 5, 0)
    }

    /// The `kill` cancel action and the `kill_cancelling` status (4.4+).
    pub const fn has_kill(self) -> bool {
        self.at_least(4, 4, 0)
    }

    /// Execution field `ended_at` (4.4+).
    pub const fn execution_has_ended_at(self) -> bool {
        self.at_least(4, 4, 0)
    }

    /// Execution field `started_at` (4.5+).
    pub const fn execution_has_started_at(self) -> bool {
        self.at_least(4, 5, 0)
    }

    /// Execution field `scheduled_for` (4.5.5+).
    pub const fn execution_has_scheduled_for(self) -> bool {
        self.at_least(4, 5, 5)
    }

    /// Execution fields `status_display`, `total_operations`, `finished_operations` (5.0+).
    pub const fn execution_has_operation_counts(self) -> bool {
        self.at_least(5, 0, 0)
    }

    /// Blueprint `state`, `error`, `error_traceback` and the `state` filter (5.2+).
    pub const fn blueprint_has_state(self) -> bool {
        self.at_least(5, 2, 0)
    }

    /// Blueprint `labels` and `upload_execution` (6.0+).
    pub const fn blueprint_has_labels(self) -> bool {
        self.at_least(6, 0, 0)
    }

    /// Blueprint `requirements` (7.0+).
    pub const fn blueprint_has_requirements(self) -> bool {
        self.at_least(7, 0, 0)
    }

    /// Deployment `labels` (5.1.1+).
    pub const fn deployment_has_labels(self) -> bool {
        self.at_least(5, 1, 1)
    }

    /// Deployment `display_name`, `installation_status`, `deployment_status`,
    /// `latest_execution_status`, `create_execution`, `latest_execution` (6.0+).
    pub const fn deployment_has_status_fields(self) -> bool {
        self.at_least(6, 0, 0)
    }

    /// Deployment `site_name`, `runtime_only_evaluation` (5.0+).
    pub const fn deployment_has_site(self) -> bool {
        self.at_least(5, 0, 0)
    }

    /// `GET /deployments/{id}/capabilities` and the deployment `capabilities` field (4.5.5+).
    pub const fn has_capabilities(self) -> bool {
        self.at_least(4, 5, 5)
    }

    /// `POST /searches/{blueprints,deployments}` (6.0+).
    pub const fn has_searches(self) -> bool {
        self.at_least(6, 0, 0)
    }

    /// `POST /tokens` with `ctok-` tokens (6.4+); before, `GET /tokens` returns a session token.
    pub const fn has_token_resources(self) -> bool {
        self.at_least(6, 4, 0)
    }

    /// Error bodies carry a Python traceback (4.x); newer servers send `null`.
    pub const fn fills_server_traceback(self) -> bool {
        !self.at_least(5, 0, 0)
    }

    /// A `_size` above 1000 is refused with `illegal_action_error` (4.x).
    pub const fn refuses_large_page(self) -> bool {
        !self.at_least(5, 0, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        s.parse().unwrap()
    }

    #[test]
    fn short_and_long_forms_parse_and_order() {
        assert_eq!(v("7.0"), Version(7, 0, 0));
        assert_eq!(v("4.5.5"), Version(4, 5, 5));
        assert!(v("5.1") < v("5.1.1"));
        assert!("3.4".parse::<Version>().is_err());
        assert!("8.0".parse::<Version>().is_err());
        assert!("seven".parse::<Version>().is_err());
    }

    #[test]
    fn letter_first_rule_applies_from_4_4_to_5_2_only() {
        assert!(!v("4.3").id_must_begin_with_letter());
        assert!(v("4.4").id_must_begin_with_letter());
        assert!(v("5.1").id_must_begin_with_letter());
        assert!(v("5.2.7").id_must_begin_with_letter());
        assert!(!v("6.4").id_must_begin_with_letter());
        assert!(!v("7.0").id_must_begin_with_letter());
    }

    #[test]
    fn delete_mode_follows_the_version_matrix() {
        assert_eq!(v("4.3").delete_mode(), DeleteMode::Sync200);
        assert_eq!(v("4.6").delete_mode(), DeleteMode::Async200);
        assert_eq!(v("5.0").delete_mode(), DeleteMode::Async200);
        assert_eq!(v("5.1").delete_mode(), DeleteMode::Async204);
        assert_eq!(v("7.0").delete_mode(), DeleteMode::Async204);
    }

    #[test]
    fn labels_and_state_appear_at_their_versions() {
        assert!(!v("5.1").deployment_has_labels());
        assert!(v("5.1.1").deployment_has_labels());
        assert!(!v("5.1").blueprint_has_state());
        assert!(v("5.2").blueprint_has_state());
        assert!(!v("5.2").blueprint_has_labels());
        assert!(v("6.4").blueprint_has_labels());
        assert!(v("7.0").blueprint_has_requirements());
        assert!(!v("4.3").has_queue());
        assert!(v("5.1").has_queue());
    }
}
