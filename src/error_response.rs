//! The answers hookgate gives itself: JSON `{"error": "<stable_code>", "message": "..."}`.

use http::Response;

#[derive(Debug, Clone)]
pub struct ErrorResponse {
    pub status: u16,
    /// Stable, documented code clients can match on.
    pub code: &'static str,
    /// Human explanation; never contains a secret.
    pub message: String,
    /// The request field at fault (`url`, `event_types[2]`), for API input.
    pub field: Option<String>,
    pub headers: Vec<(&'static str, String)>,
}

impl ErrorResponse {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        ErrorResponse {
            status,
            code,
            message: message.into(),
            field: None,
            headers: Vec::new(),
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    fn json(&self) -> serde_json::Value {
        let mut body = serde_json::json!({ "error": self.code, "message": self.message });
        if let Some(field) = &self.field {
            body["field"] = serde_json::Value::String(field.clone());
        }
        body
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    /// The answer as a complete response, for `ServeHttp` apps.
    pub fn to_response(&self) -> Response<Vec<u8>> {
        let mut response = json_response(self.status, self.json());
        for (name, value) in &self.headers {
            if let Ok(value) = http::HeaderValue::from_str(value) {
                response.headers_mut().insert(*name, value);
            }
        }
        response
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(&self.json()).expect("a JSON object of strings always serializes")
    }
}

/// A JSON response for the `ServeHttp` apps (admin port, outbound listener).
pub fn json_response(status: u16, body: serde_json::Value) -> Response<Vec<u8>> {
    let body = serde_json::to_vec(&body).expect("JSON values always serialize");
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store")
        .body(body)
        .expect("static response parts are valid")
}
