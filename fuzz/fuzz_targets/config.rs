#![no_main]
// The config loader must answer any text with a Config or a list of errors, never a panic.
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = hookgate::config::load_str("fuzz.yaml", text, &|name| (name == "SET").then(|| "value".to_string()));
    }
});
