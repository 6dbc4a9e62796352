//! Fuzzes the bodies the admission doors read from the network: any bytes get
//! an answer (a review or a 400), never a panic; and a review that parses with
//! a refused image is never allowed.
#![no_main]

use imagegate_core::Policy;
use imagegate_server::state::AppState;
use libfuzzer_sys::fuzz_target;

const POLICY: &str = "apiVersion: imagegate.dev/v1\nkind: ImagePolicy\nmetadata: {name: f}\nspec:\n  imageAccess: {enabled: true}\n  registryAccess: {enabled: true, allow: [docker.io]}\n";

fuzz_target!(|data: &[u8]| {
    let state = AppState::fixed(Policy::load(POLICY).expect("policy"), 1 << 20);
    let _ = imagegate_server::admission::review(&state, data, &mut Vec::new());
    if let Ok(review) = imagegate_server::imagepolicy::parse(data) {
        let answer = imagegate_server::imagepolicy::answer(&state, &review, &mut Vec::new());
        let refused = review.spec.containers.iter().any(|c| {
            !imagegate_core::decide(state.policy().as_ref(), &imagegate_core::Input {
                image: &c.image,
                namespace: Some(&review.spec.namespace).filter(|n| !n.is_empty()).map(|n| n.as_str()),
                ..imagegate_core::Input::default()
            })
            .is_allowed()
        });
        assert!(!(refused && answer.status.allowed), "a refused image was allowed");
    }
});
