//! Fuzzes the parser of upstream `WWW-Authenticate` challenges (what a
//! possibly hostile upstream sends the gateway): never panics, and a Bearer
//! challenge always has the realm it names, as sent (unquoted).
#![no_main]

use imagegate_server::gateway::upstream::{Challenge, parse_challenge};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(value) = std::str::from_utf8(data) else {
        return;
    };
    if let Some(Challenge::Bearer { realm, .. }) = parse_challenge(value) {
        assert!(value.to_ascii_lowercase().contains("realm"), "{value:?}");
        assert!(realm.len() <= value.len(), "{value:?}");
    }
});
