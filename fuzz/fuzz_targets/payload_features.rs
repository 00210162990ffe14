//! Payload features: declarations read from JSON (`PayloadFeatures`, the form
//! workload files, run databases and model files share), then
//! `PayloadFeatures::eval` on an arbitrary payload. Every value is finite or
//! `None`, one per feature; declarations write back to JSON that reads to the
//! same list.
//!
//! Input: the declarations' JSON, NUL, the payload.
#![no_main]

use hyperfake_core::payload::PayloadFeatures;
use hyperfake_fuzz::split;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (declarations, payload) = split(data, 0);
    let features = match serde_json::from_slice::<PayloadFeatures>(declarations) {
        Ok(f) => f,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let values = features.eval(payload);
    assert_eq!(values.len(), features.len(), "one value per feature");
    assert!(values.iter().flatten().all(|v| v.is_finite()), "a value is finite or None");
    let again: PayloadFeatures = serde_json::from_str(&features.to_json()).expect("declarations read back");
    assert_eq!(again, features);
    for f in &features {
        let _ = (f.to_string(), f.column());
    }
});
