//! `compose.yaml` is closed by default: read as docker-compose reads it (YAML
//! with anchors and merge keys), without starting anything.

use serde_yaml_ng::Value;

const TOKEN_PATH: &str = "/run/secrets/hyperfake-token";
const FUNCTIONS_NETWORK: &str = "${HYPERFAKE_NETWORK:-hyperfake}-functions";
/// The leaf's published port; `scripts/compose.sh swarm-test` rewrites this exact line.
const LEAF_PORT: &str = "${HYPERFAKE_PUBLISH_ADDR:-127.0.0.1}:${HYPERFAKE_LEAF_PORT:-50050}:50050";

fn repo_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn compose() -> Value {
    let mut value: Value = serde_yaml_ng::from_str(&repo_file("compose.yaml")).unwrap();
    value.apply_merge().unwrap();
    for (_, service) in value["services"].as_mapping_mut().unwrap() {
        service.apply_merge().unwrap();
    }
    value
}

fn strings(value: &Value) -> Vec<&str> {
    value.as_sequence().map(|s| s.iter().filter_map(Value::as_str).collect()).unwrap_or_default()
}

fn services(compose: &Value) -> Vec<(&str, &Value)> {
    compose["services"].as_mapping().unwrap().iter().map(|(k, v)| (k.as_str().unwrap(), v)).collect()
}

#[test]
fn every_service_requires_the_token_from_a_file() {
    let compose = compose();
    let services = services(&compose);
    assert_eq!(
        services.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        ["database", "worker-1", "worker-2", "leaf"]
    );
    for (name, service) in services {
        // A flag, not the environment: an image too old to know it fails to start.
        let command = strings(&service["command"]);
        let file = command.iter().position(|a| *a == "--token-file").map(|i| command[i + 1]);
        assert_eq!(file, Some(TOKEN_PATH), "{name}: {command:?}");
        assert!(!command.contains(&"--token"), "{name}: the token on the command line");
        let environment = &service["environment"];
        assert!(environment.get("HYPERFAKE_TOKEN").is_none(), "{name}: the token in the environment");
        let volumes = strings(&service["volumes"]);
        let token = volumes
            .iter()
            .find(|v| v.ends_with(&format!(":{TOKEN_PATH}:ro")))
            .unwrap_or_else(|| panic!("{name}: no read-only token file in {volumes:?}"));
        // Required, no default: compose refuses to start without one.
        assert!(token.starts_with("${HYPERFAKE_TOKEN_FILE:?"), "{name}: {token}");
    }
}

#[test]
fn function_containers_get_an_internal_network_of_their_own() {
    let compose = compose();
    let functions = &compose["networks"]["functions"];
    assert_eq!(functions["name"].as_str(), Some(FUNCTIONS_NETWORK));
    assert_eq!(functions["internal"].as_bool(), Some(true), "function containers must have no route out");
    assert_ne!(compose["networks"]["platform"]["name"].as_str(), Some(FUNCTIONS_NETWORK));
    for (name, service) in services(&compose) {
        let networks = strings(&service["networks"]);
        assert!(networks.contains(&"platform"), "{name}: {networks:?}");
        let command = strings(&service["command"]);
        if name.starts_with("worker") {
            assert!(networks.contains(&"functions"), "{name}: {networks:?}");
            let network = command.iter().position(|a| *a == "--network").map(|i| command[i + 1]);
            assert_eq!(network, Some(FUNCTIONS_NETWORK), "{name} starts function containers elsewhere");
        } else {
            assert!(!networks.contains(&"functions"), "{name} shares a network with function containers");
        }
    }
}

#[test]
fn only_the_leaf_is_published_and_on_loopback_unless_asked() {
    let compose = compose();
    for (name, service) in services(&compose) {
        let ports = &service["ports"];
        if name == "leaf" {
            assert_eq!(strings(ports), [LEAF_PORT]);
        } else {
            assert!(ports.is_null(), "{name} publishes {ports:?}");
        }
    }
    let script = repo_file("scripts/compose.sh");
    assert!(
        script.contains(&format!("'      - \"{LEAF_PORT}\"'")),
        "compose.sh swarm-test rewrites another line"
    );
}
