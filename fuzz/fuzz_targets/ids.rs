//! ID parsing (DESIGN.md §2): whatever the input, `parse` never panics, and what it accepts is
//! safe in a Cloudify deployment ID, a Vault path and a store key.
#![no_main]

use cloudify_osb::domain::ids::{BindingId, InstanceId, OperationId, PlanId, ServiceId};
use libfuzzer_sys::fuzz_target;

fn safe(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(id) = InstanceId::parse(s) {
        assert!(safe(id.as_str(), 200), "accepted unsafe instance id {s:?}");
        let dep = id.deployment_id();
        assert!(dep.starts_with("osb-") && dep.len() <= 256);
        assert!(!dep.contains('/'));
    }
    if let Ok(id) = BindingId::parse(s) {
        assert!(safe(id.as_str(), 200), "accepted unsafe binding id {s:?}");
    }
    for ok in [
        ServiceId::parse(s).is_ok(),
        PlanId::parse(s).is_ok(),
        OperationId::parse(s).is_ok(),
    ] {
        assert!(!ok || safe(s, 255), "accepted unsafe id {s:?}");
    }
    // The JSON form goes through the same check.
    let json = serde_json::Value::String(s.to_owned());
    let via_json = serde_json::from_value::<InstanceId>(json).is_ok();
    assert_eq!(via_json, InstanceId::parse(s).is_ok());
});
