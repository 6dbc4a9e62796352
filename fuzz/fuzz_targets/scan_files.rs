//! Fuzzes what `imagegate scan` reads from a repository it does not trust: the
//! same bytes as a Dockerfile, and as a YAML stream read as Kubernetes objects
//! and as a Compose file. Nothing panics, and every image found points at a
//! real place in the text (line and column within it).
#![no_main]

use imagegate_scan::{compose, dockerfile, manifest, yaml};
use libfuzzer_sys::fuzz_target;

/// Dockerfile lines end at `\n` (BuildKit's scanner); YAML's also at a lone
/// `\r` (YAML 1.2, 5.4).
fn within(text: &str, yaml: bool, line: usize, column: usize) {
    let lines: Vec<&str> = if yaml {
        text.split("\r\n").flat_map(|l| l.split(['\r', '\n'])).collect()
    } else {
        text.lines().collect()
    };
    let Some(l) = line.checked_sub(1).and_then(|i| lines.get(i)) else {
        panic!("line {line} is not in the text");
    };
    assert!(column >= 1 && column <= l.chars().count() + 1, "column {column} of line {line}");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let args = [("A".to_owned(), "alpine".to_owned())];
    for f in dockerfile::images(text, &args) {
        within(text, false, f.line, f.column);
    }
    // Each document on its own (the whole stream when it parses): a
    // document after a broken one still points into the text.
    for doc in &yaml::each_document(text).into_iter().flatten().collect::<Vec<_>>() {
        let found = manifest::manifest_images(doc);
        for image in &found.images {
            within(text, true, image.line, image.column);
        }
        let env = |name: &str| (name == "TAG").then(|| "1".to_owned());
        if let Ok(services) = compose::services(doc, &env) {
            for image in &services.images {
                within(text, true, image.line, image.column);
            }
        }
    }
});
