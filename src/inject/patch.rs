//! The JSON Patch (RFC 6902) that adds hookgate to a pod: a native sidecar (an init
//! container with `restartPolicy: Always`, so it starts before the app and stops after it),
//! its volumes, and an annotation that marks the pod as injected. Every operation works
//! whether or not the pod already has init containers, volumes or annotations.

use serde_json::{json, Value};

/// `hookgate.io/*` annotations: the pod asks for injection and says how.
pub const INJECT: &str = "hookgate.io/inject";
pub const INJECTED: &str = "hookgate.io/injected";
pub const CONFIG: &str = "hookgate.io/config";
pub const SECRETS: &str = "hookgate.io/secrets";
const PORTS: [(&str, &str, u16); 4] = [
    ("hookgate.io/app-port", "HOOKGATE_APP_PORT", 8080),
    ("hookgate.io/inbound-port", "HOOKGATE_INBOUND_PORT", 8000),
    ("hookgate.io/outbound-port", "HOOKGATE_OUTBOUND_PORT", 9090),
    ("hookgate.io/admin-port", "HOOKGATE_ADMIN_PORT", 9901),
];
/// The sidecar's name, also how an injected pod is recognised.
pub const CONTAINER: &str = "hookgate";
const CONFIG_DIR: &str = "/etc/hookgate";
const SECRETS_DIR: &str = "/etc/hookgate/secrets";
const DATA_DIR: &str = "/var/lib/hookgate";

/// What the injector adds to every pod.
#[derive(Debug, Clone)]
pub struct Sidecar {
    pub image: String,
}

/// What to do with a pod.
#[derive(Debug, PartialEq)]
pub enum Decision {
    /// Allow it as it is, and why.
    Unchanged(&'static str),
    /// Allow it with this patch.
    Patch(Vec<Value>),
    /// Allow it unchanged, with a warning for whoever created it.
    Warn(String),
    /// Refuse it: the pod asks for injection in a way that cannot work.
    Deny(String),
}

fn annotation<'p>(pod: &'p Value, name: &str) -> Option<&'p str> {
    pod.pointer("/metadata/annotations")
        .and_then(|a| a.get(name))
        .and_then(Value::as_str)
}

/// `/` and `~` escaped for a JSON Pointer segment.
fn pointer_segment(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Decides for one pod.
pub fn decide(pod: &Value, sidecar: &Sidecar) -> Decision {
    if annotation(pod, INJECT) != Some("true") {
        return Decision::Unchanged("not annotated with hookgate.io/inject: \"true\"");
    }
    let has_sidecar = ["/spec/initContainers", "/spec/containers"]
        .iter()
        .any(|p| {
            pod.pointer(p)
                .and_then(Value::as_array)
                .is_some_and(|cs| cs.iter().any(|c| c["name"] == CONTAINER))
        });
    if annotation(pod, INJECTED) == Some("true") || has_sidecar {
        return Decision::Unchanged("already injected");
    }
    let Some(config) = annotation(pod, CONFIG) else {
        return Decision::Warn(format!(
            "hookgate was not injected: annotate the pod with {CONFIG}: <ConfigMap with a hookgate.yaml key>"
        ));
    };
    let mut env = Vec::new();
    let mut ports = [0u16; 4];
    for (i, (name, variable, default)) in PORTS.iter().enumerate() {
        let port = match annotation(pod, name) {
            None => *default,
            Some(value) => match value.parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Decision::Deny(format!(
                        "{name}: expected a port number, found {value:?}"
                    ))
                }
            },
        };
        ports[i] = port;
        env.push(json!({ "name": variable, "value": port.to_string() }));
    }
    // The pod's name and namespace, for the resource of trace spans (Kubernetes' downward API).
    for (variable, field) in [
        ("HOOKGATE_POD_NAME", "metadata.name"),
        ("HOOKGATE_POD_NAMESPACE", "metadata.namespace"),
    ] {
        env.push(json!({ "name": variable, "valueFrom": { "fieldRef": { "fieldPath": field } } }));
    }
    let [_, inbound, outbound, admin] = ports;
    let secrets = annotation(pod, SECRETS);
    let mut mounts = vec![
        json!({ "name": "hookgate-config", "mountPath": CONFIG_DIR, "readOnly": true }),
        json!({ "name": "hookgate-data", "mountPath": DATA_DIR }),
    ];
    let mut volumes = vec![
        json!({ "name": "hookgate-config", "configMap": { "name": config } }),
        json!({ "name": "hookgate-data", "emptyDir": {} }),
    ];
    if let Some(secret) = secrets {
        mounts.push(
            json!({ "name": "hookgate-secrets", "mountPath": SECRETS_DIR, "readOnly": true }),
        );
        volumes.push(json!({ "name": "hookgate-secrets", "secret": { "secretName": secret } }));
    }
    let probe = |path: &str, period: u32, failures: u32| {
        json!({
            "httpGet": { "path": path, "port": "hookgate-admin" },
            "periodSeconds": period,
            "failureThreshold": failures,
        })
    };
    let container = json!({
        "name": CONTAINER,
        "image": sidecar.image,
        "args": ["run", "--config", format!("{CONFIG_DIR}/hookgate.yaml"), "--log-format", "json"],
        "restartPolicy": "Always",
        "env": env,
        "ports": [
            { "name": "hookgate-in", "containerPort": inbound, "protocol": "TCP" },
            { "name": "hookgate-out", "containerPort": outbound, "protocol": "TCP" },
            { "name": "hookgate-admin", "containerPort": admin, "protocol": "TCP" },
        ],
        "startupProbe": probe("/readyz", 1, 30),
        "readinessProbe": probe("/readyz", 5, 3),
        "livenessProbe": probe("/livez", 10, 3),
        "resources": {
            "requests": { "cpu": "50m", "memory": "32Mi" },
            "limits": { "memory": "256Mi" },
        },
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "runAsGroup": 65532,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": { "drop": ["ALL"] },
            "seccompProfile": { "type": "RuntimeDefault" },
        },
        "volumeMounts": mounts,
    });
    let mut patch = Vec::new();
    // First among the init containers: the others (migrations...) may need it running.
    match pod
        .pointer("/spec/initContainers")
        .and_then(Value::as_array)
    {
        Some(_) => {
            patch.push(json!({ "op": "add", "path": "/spec/initContainers/0", "value": container }))
        }
        None => {
            patch.push(json!({ "op": "add", "path": "/spec/initContainers", "value": [container] }))
        }
    }
    match pod.pointer("/spec/volumes").and_then(Value::as_array) {
        Some(_) => patch.extend(
            volumes
                .into_iter()
                .map(|v| json!({ "op": "add", "path": "/spec/volumes/-", "value": v })),
        ),
        None => patch.push(json!({ "op": "add", "path": "/spec/volumes", "value": volumes })),
    }
    patch.push(json!({
        "op": "add",
        "path": format!("/metadata/annotations/{}", pointer_segment(INJECTED)),
        "value": "true",
    }));
    Decision::Patch(patch)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar() -> Sidecar {
        Sidecar {
            image: "hookgate:test".into(),
        }
    }

    fn pod(annotations: Value, spec: Value) -> Value {
        json!({ "apiVersion": "v1", "kind": "Pod", "metadata": { "name": "p", "annotations": annotations }, "spec": spec })
    }

    #[test]
    fn a_minimal_annotated_pod_gets_the_sidecar_its_volumes_and_the_mark() {
        let pod = pod(
            json!({ INJECT: "true", CONFIG: "cfg", "hookgate.io/app-port": "3000" }),
            json!({ "containers": [{ "name": "app", "image": "app" }] }),
        );
        let Decision::Patch(patch) = decide(&pod, &sidecar()) else {
            panic!("expected a patch");
        };
        assert_eq!(patch[0]["path"], "/spec/initContainers");
        let container = &patch[0]["value"][0];
        assert_eq!(container["restartPolicy"], "Always");
        assert_eq!(
            container["env"][0],
            json!({ "name": "HOOKGATE_APP_PORT", "value": "3000" })
        );
        let env = container["env"].as_array().unwrap();
        assert!(env.contains(&json!({ "name": "HOOKGATE_POD_NAME", "valueFrom": { "fieldRef": { "fieldPath": "metadata.name" } } })));
        assert_eq!(patch[1]["path"], "/spec/volumes");
        assert_eq!(
            patch[1]["value"].as_array().unwrap().len(),
            2,
            "no secret asked for"
        );
        assert_eq!(
            patch[2]["path"],
            "/metadata/annotations/hookgate.io~1injected"
        );
    }

    #[test]
    fn existing_init_containers_and_volumes_are_kept() {
        let pod = pod(
            json!({ INJECT: "true", CONFIG: "cfg", SECRETS: "s" }),
            json!({
                "initContainers": [{ "name": "migrate", "image": "m" }],
                "containers": [{ "name": "app", "image": "app" }],
                "volumes": [{ "name": "own", "emptyDir": {} }],
            }),
        );
        let Decision::Patch(patch) = decide(&pod, &sidecar()) else {
            panic!("expected a patch");
        };
        assert_eq!(patch[0]["path"], "/spec/initContainers/0");
        let appended: Vec<_> = patch[1..4].iter().map(|op| op["path"].clone()).collect();
        assert_eq!(appended, ["/spec/volumes/-"; 3]);
    }

    #[test]
    fn pods_that_did_not_ask_or_already_have_it_are_left_alone() {
        let spec = json!({ "containers": [{ "name": "app", "image": "app" }] });
        assert!(matches!(
            decide(&pod(json!({}), spec.clone()), &sidecar()),
            Decision::Unchanged(_)
        ));
        assert!(matches!(
            decide(
                &pod(
                    json!({ INJECT: "true", CONFIG: "c", INJECTED: "true" }),
                    spec
                ),
                &sidecar()
            ),
            Decision::Unchanged("already injected")
        ));
        let bad = pod(
            json!({ INJECT: "true", CONFIG: "c", "hookgate.io/admin-port": "http" }),
            json!({ "containers": [] }),
        );
        assert_eq!(
            decide(&bad, &sidecar()),
            Decision::Deny("hookgate.io/admin-port: expected a port number, found \"http\"".into())
        );
        let no_config = pod(json!({ INJECT: "true" }), json!({ "containers": [] }));
        assert!(matches!(decide(&no_config, &sidecar()), Decision::Warn(_)));
    }
}
