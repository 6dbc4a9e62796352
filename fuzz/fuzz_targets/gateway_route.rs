//! Fuzzes the registry gateway's path router: any path routes or is refused,
//! never panics, and every accepted repository name is plain lowercase path
//! components that the reference grammar accepts (no `..`, `%`, `//`).
#![no_main]

use imagegate_core::reference::grammar;
use imagegate_server::gateway::route::{Route, route};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(path) = std::str::from_utf8(data) else {
        return;
    };
    let name = match route(path) {
        Ok(Route::Manifest { name, .. } | Route::Blob { name, .. } | Route::Tags { name } | Route::Upload { name }) => name,
        _ => return,
    };
    assert!(!name.is_empty());
    assert!(name.is_ascii(), "{name:?}");
    assert!(!name.contains("..") && !name.contains("//") && !name.contains('%'), "{name:?}");
    assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
    assert!(grammar::parse_name(&name).is_ok(), "{name:?}");
    assert!(path.contains(&name));
});
