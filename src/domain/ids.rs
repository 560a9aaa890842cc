//! Validating identifiers (DESIGN.md §2).
//!
//! Every ID that reaches a Cloudify deployment ID, a Vault path or a store key goes through
//! one of these newtypes first, so an unchecked string never does. Must not import any
//! adapter, HTTP or AWS crate.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

/// The default UUID namespace for service and plan IDs (`BROKER_ID_NAMESPACE`).
pub const DEFAULT_ID_NAMESPACE: Uuid = uuid::uuid!("1bba79da-e930-497e-b343-ce940311597b");

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {reason}")]
pub struct IdError {
    /// Which identifier, e.g. `instance_id`.
    pub kind: &'static str,
    /// What is wrong with it, readable by the platform's user.
    pub reason: String,
}

fn check_id(kind: &'static str, s: &str, max: usize) -> Result<(), IdError> {
    let err = |reason: String| Err(IdError { kind, reason });
    if s.is_empty() {
        return err("must not be empty".into());
    }
    if s.len() > max {
        return err(format!("must be at most {max} characters"));
    }
    if s == "." || s == ".." {
        return err(format!("must not be {s:?}"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return err(format!(
            "may contain only letters, digits, '.', '_' and '-' (found {c:?})"
        ));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $max:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an identifier received from outside.
            pub fn parse(s: &str) -> Result<Self, IdError> {
                check_id($kind, s, $max)?;
                Ok(Self(s.to_owned()))
            }

            /// The identifier as a string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A service instance ID chosen by the platform: `[A-Za-z0-9._-]{1,200}`, never `.`/`..`.
    InstanceId,
    "instance_id",
    200
);
id_type!(
    /// A service binding ID chosen by the platform: `[A-Za-z0-9._-]{1,200}`, never `.`/`..`.
    BindingId,
    "binding_id",
    200
);
id_type!(
    /// A service offering ID (ours are UUIDv5, see [`service_id_for`]).
    ServiceId,
    "service_id",
    255
);
id_type!(
    /// A plan ID (ours are UUIDv5, see [`plan_id_for`]).
    PlanId,
    "plan_id",
    255
);
id_type!(
    /// An opaque operation handle returned in 202 answers and echoed by `last_operation`.
    OperationId,
    "operation",
    255
);

impl InstanceId {
    /// The Cloudify deployment ID of this instance: `osb-` + the instance ID (valid on every
    /// Cloudify version: letter first, allowed characters, ≤ 256).
    pub fn deployment_id(&self) -> String {
        format!("osb-{}", self.0)
    }
}

impl OperationId {
    /// A fresh operation handle for an operation of the given kind, e.g. `provision-3f2a…`.
    pub fn generate(kind: &str) -> Self {
        Self(format!("{kind}-{}", Uuid::new_v4().simple()))
    }
}

/// Service ID = UUIDv5(namespace, `"{tenant}/{blueprint_id}"`) (DESIGN.md §2).
pub fn service_id_for(namespace: &Uuid, tenant: &str, blueprint_id: &str) -> ServiceId {
    ServiceId(Uuid::new_v5(namespace, format!("{tenant}/{blueprint_id}").as_bytes()).to_string())
}

/// Plan ID = UUIDv5(namespace, `"{tenant}/{blueprint_id}/{plan_name}"`) (DESIGN.md §2).
pub fn plan_id_for(namespace: &Uuid, tenant: &str, blueprint_id: &str, plan: &str) -> PlanId {
    PlanId(
        Uuid::new_v5(
            namespace,
            format!("{tenant}/{blueprint_id}/{plan}").as_bytes(),
        )
        .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guid_instance_ids_are_accepted() {
        let id = InstanceId::parse("3f2a9c1e-0b6d-4c1e-9f7a-1d2e3f4a5b6c").unwrap();
        assert_eq!(
            id.deployment_id(),
            "osb-3f2a9c1e-0b6d-4c1e-9f7a-1d2e3f4a5b6c"
        );
    }

    #[test]
    fn unsafe_ids_are_refused() {
        for bad in [
            "", ".", "..", "a/b", "a b", "x%2F", "ü", "a\nb", "{{x}}", "a:b",
        ] {
            assert!(InstanceId::parse(bad).is_err(), "{bad:?} must be refused");
            assert!(BindingId::parse(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(InstanceId::parse(&"a".repeat(201)).is_err());
        assert!(InstanceId::parse(&"a".repeat(200)).is_ok());
    }

    #[test]
    fn the_error_names_the_identifier() {
        let e = BindingId::parse("a/b").unwrap_err();
        assert!(e.to_string().starts_with("binding_id "), "{e}");
    }

    #[test]
    fn service_and_plan_ids_are_stable_uuid_v5() {
        let a = service_id_for(&DEFAULT_ID_NAMESPACE, "default_tenant", "mariadb");
        let b = service_id_for(&DEFAULT_ID_NAMESPACE, "default_tenant", "mariadb");
        assert_eq!(a, b);
        assert_ne!(a, service_id_for(&DEFAULT_ID_NAMESPACE, "other", "mariadb"));
        let p = plan_id_for(
            &DEFAULT_ID_NAMESPACE,
            "default_tenant",
            "mariadb",
            "default",
        );
        assert_ne!(p.as_str(), a.as_str());
        assert_eq!(Uuid::parse_str(a.as_str()).unwrap().get_version_num(), 5);
    }

    #[test]
    fn deserializing_validates() {
        assert!(serde_json::from_str::<InstanceId>("\"ok-1\"").is_ok());
        assert!(serde_json::from_str::<InstanceId>("\"../x\"").is_err());
    }
}
