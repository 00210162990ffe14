//! The image allow-list: `ImageRef::parse` (the default `hyperfaas-` prefix)
//! and `parse_allowed` with fuzzed prefixes. An accepted reference must print
//! back to text that parses to the same reference, its name must follow the
//! prefix, and it must never name a registry or a path.
//!
//! Input: the reference, then optionally NUL and prefixes separated by NUL.
#![no_main]

use hyperfake_core::ImageRef;
use hyperfake_core::defaults::IMAGE_PREFIX;
use hyperfake_fuzz::split;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (reference, prefixes) = split(data, 0);
    let Ok(reference) = std::str::from_utf8(reference) else { return };
    let prefixes: Vec<&str> =
        prefixes.split(|b| *b == 0).filter_map(|p| std::str::from_utf8(p).ok()).collect();
    check(reference, ImageRef::parse(reference), &[IMAGE_PREFIX]);
    if !prefixes.is_empty() {
        check(reference, ImageRef::parse_allowed(reference, &prefixes), &prefixes);
    }
});

fn check(text: &str, parsed: Result<ImageRef, hyperfake_core::ImageRefError>, prefixes: &[&str]) {
    let image = match parsed {
        Ok(image) => image,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    assert!(!text.contains('/'), "no registry or path is accepted: {text:?}");
    assert!(prefixes.iter().any(|p| image.repository() == format!("{p}{}", image.name())));
    assert_eq!(image.to_string(), text, "an accepted reference prints as written");
    let again = ImageRef::parse_allowed(&image.to_string(), prefixes).expect("printed reference parses");
    assert_eq!(again, image);
    let _ = image.image_tag();
}
