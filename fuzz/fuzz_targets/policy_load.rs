//! Fuzzes the policy loader: any text either loads or yields errors that name
//! where, and a loaded policy decides every reference without panicking.
#![no_main]

use imagegate_core::{Input, Policy, decide};
use libfuzzer_sys::fuzz_target;

const IMAGES: [&str; 6] = [
    "nginx",
    "someuser/custom-image:1",
    "ghcr.io/corp/app@sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
    "localhost:5000/x",
    "Docker.io/nginx",
    "foo_bar.com/app",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Policy::load(text) {
        Ok(policy) => {
            for image in IMAGES {
                let _ = decide(&policy, &Input { image, namespace: Some("default"), user: Some("alice"), break_glass: true, owner: false });
            }
        }
        Err(errors) => assert!(!errors.0.is_empty()),
    }
});
