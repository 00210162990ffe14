//! Which instance this process is.

use hyperfake_core::InstanceId;
use hyperfake_core::defaults::env;

/// Used when neither variable is set, so a response never carries an empty id.
const UNKNOWN_INSTANCE: &str = "unknown";

/// The instance id from the environment read through `lookup`: the worker's
/// `HYPERFAKE_INSTANCE_ID`, else `HOSTNAME` (Docker sets it to the short
/// container id), else `"unknown"`. Empty values count as unset.
pub fn instance_id_from(lookup: impl Fn(&str) -> Option<String>) -> InstanceId {
    [env::INSTANCE_ID, "HOSTNAME"]
        .into_iter()
        .filter_map(lookup)
        .map(|value| value.trim().to_string())
        .find(|value| !value.is_empty())
        .map_or_else(|| InstanceId::from(UNKNOWN_INSTANCE), InstanceId::new)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> =
            vars.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect();
        move |name| vars.get(name).cloned()
    }

    #[test]
    fn prefers_the_worker_variable() {
        let id = instance_id_from(lookup(&[(env::INSTANCE_ID, "inst-1"), ("HOSTNAME", "abc123")]));
        assert_eq!(id.as_str(), "inst-1");
    }

    #[test]
    fn falls_back_to_hostname_then_unknown() {
        assert_eq!(instance_id_from(lookup(&[("HOSTNAME", "abc123")])).as_str(), "abc123");
        assert_eq!(instance_id_from(lookup(&[(env::INSTANCE_ID, " "), ("HOSTNAME", "h")])).as_str(), "h");
        assert_eq!(instance_id_from(lookup(&[])).as_str(), UNKNOWN_INSTANCE);
    }
}
