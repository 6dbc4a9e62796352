//! Fuzzes the reference parser and asserts its invariants, not just "no crash":
//! the normalised form re-parses to the same reference, normalising is
//! idempotent, and deciding is total.
#![no_main]

use imagegate_core::reference::{Ambiguity, Reference, grammar};
use imagegate_core::{Input, Policy, decide};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    let _ = grammar::parse_reference(input);
    let _ = grammar::parse_name(input);
    match Reference::parse(input) {
        Ok(r) => {
            let again = Reference::parse(r.as_str()).expect("normalised form must parse");
            assert_eq!(again, r, "parse(display(r)) != r for {input:?}");
            assert_eq!(again.as_str(), r.as_str(), "normalising is not idempotent for {input:?}");
            let _ = Ambiguity::detect(input, &r);
            assert!(r.as_str().is_ascii());
        }
        Err(e) => {
            let message = e.to_string();
            assert!(message.starts_with("invalid reference "));
        }
    }
    let d = decide(&Policy::default(), &Input::image(input));
    assert_eq!(d, decide(&Policy::default(), &Input::image(input)));
});
