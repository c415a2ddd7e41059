//! `admission.k8s.io/v1` AdmissionReview in and out. Only the fields the injector needs are
//! read; the answer always echoes the request's uid, and a review that cannot be read is
//! denied with the reason (the API server then reports it on the pod's owner).

use base64::Engine;
use serde_json::{json, Value};

use super::patch::{decide, Decision, Sidecar};

/// The AdmissionReview to send back for `body`.
pub fn answer(body: &[u8], sidecar: &Sidecar) -> Value {
    let review: Value = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => return deny("", &format!("the AdmissionReview is not JSON: {e}")),
    };
    let uid = review
        .pointer("/request/uid")
        .and_then(Value::as_str)
        .unwrap_or("");
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return deny(
            uid,
            "expected apiVersion admission.k8s.io/v1 and kind AdmissionReview",
        );
    }
    if uid.is_empty() {
        return deny(uid, "the AdmissionReview has no request.uid");
    }
    let request = &review["request"];
    if request.pointer("/kind/kind") != Some(&json!("Pod")) {
        return allow(uid, None, None);
    }
    let pod = &request["object"];
    if !pod.is_object() || !pod["spec"].is_object() {
        return deny(uid, "request.object is not a Pod with a spec");
    }
    match decide(pod, sidecar) {
        Decision::Unchanged(_) => allow(uid, None, None),
        Decision::Warn(warning) => allow(uid, None, Some(warning)),
        Decision::Patch(patch) => allow(uid, Some(patch), None),
        Decision::Deny(reason) => deny(uid, &reason),
    }
}

fn review(response: Value) -> Value {
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

fn allow(uid: &str, patch: Option<Vec<Value>>, warning: Option<String>) -> Value {
    let mut response = json!({ "uid": uid, "allowed": true });
    if let Some(patch) = patch {
        let bytes = serde_json::to_vec(&patch).expect("a patch always serializes");
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
    }
    if let Some(warning) = warning {
        response["warnings"] = json!([warning]);
    }
    review(response)
}

fn deny(uid: &str, reason: &str) -> Value {
    review(json!({
        "uid": uid,
        "allowed": false,
        "status": { "code": 400, "message": format!("hookgate injector: {reason}") },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sidecar() -> Sidecar {
        Sidecar {
            image: "hookgate:test".into(),
        }
    }

    #[test]
    fn garbage_and_wrong_kinds_get_clear_answers() {
        let garbage = answer(b"{not json", &sidecar());
        assert_eq!(garbage["response"]["allowed"], false);
        assert!(garbage["response"]["status"]["message"]
            .as_str()
            .unwrap()
            .contains("not JSON"));
        let other = answer(
            br#"{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","kind":{"kind":"Service"},"object":{}}}"#,
            &sidecar(),
        );
        assert_eq!(other["response"], json!({ "uid": "u1", "allowed": true }));
        let v1beta1 = answer(
            br#"{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"u2"}}"#,
            &sidecar(),
        );
        assert_eq!(v1beta1["response"]["uid"], "u2");
        assert_eq!(v1beta1["response"]["allowed"], false);
    }
}
