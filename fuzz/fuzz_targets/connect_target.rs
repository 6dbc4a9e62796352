//! Fuzzes the registry proxy's CONNECT target parser: any input is read or
//! refused, never panics; an accepted target has no userinfo or
//! percent-encoding, a lowercase ASCII host, a port from 1 to 65535, and
//! reads back to itself from its display.
#![no_main]

use imagegate_server::proxy::target::{Host, Target};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(target) = Target::parse(input) else {
        return;
    };
    let shown = target.to_string();
    assert!(shown.is_ascii(), "{shown:?}");
    assert!(!shown.contains('@') && !shown.contains('%'), "{shown:?}");
    assert_ne!(target.port(), 0);
    if let Host::Name(name) = target.host() {
        assert!(!name.is_empty() && name.len() <= 253, "{name:?}");
        assert!(!name.bytes().any(|b| b.is_ascii_uppercase()), "{name:?}");
        assert!(!name.ends_with('.') && !name.contains(".."), "{name:?}");
    }
    assert_eq!(Target::parse(&shown).as_ref(), Ok(&target), "{input:?}");
});
