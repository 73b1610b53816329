//! Config text → parse, interpolate, validate; a valid config is also rendered (the
//! effective-config JSON and the `validate` summary). Nothing may panic, and alias bombs and
//! deep nesting must be refused within the run's `-timeout` and `-rss_limit_mb`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A fixed environment keeps every run reproducible.
    let lookup = |name: &str| (name == "SET").then(|| "127.0.0.1:1".to_string());
    match rampart::config::parse(text, &lookup) {
        Ok(config) => {
            let _ = rampart::config::json::effective_json(&config).to_string();
            let _ = rampart::config::summary(&config);
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
});
