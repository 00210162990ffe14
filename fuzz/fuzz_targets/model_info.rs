//! What a model file says about itself (`ModelInfo`): the metadata an ONNX
//! file carries (`hyperfake.*` keys) and a JSON file's fields become this one
//! struct, checked by `ModelInfo::check`. Loading an ONNX *file* needs an ONNX
//! Runtime session (a dynamic library, milliseconds per file, not
//! instrumented), so this target fuzzes the part hyperfake owns instead:
//! deserialising `ModelInfo` (payload features, ranges, spreads, quantiles,
//! host baseline, all with their own validating deserialisers), `check`, and
//! on accepted infos `inputs_for` on an arbitrary payload, `clamp_input`,
//! `clamp_output` and the residual / cold-start / baseline samplers.
//!
//! Input: `ModelInfo` JSON, NUL, a request payload, NUL, f32s (LE) used as the
//! five fixed inputs, a prediction and quantiles `u`.
#![no_main]

use hyperfake_fuzz::{floats, split};
use hyperfake_model::{BASE_INPUTS, ModelInfo, Prediction};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (json, rest) = split(data, 0);
    let (payload, numbers) = split(rest, 0);
    let Ok(info) = serde_json::from_slice::<ModelInfo>(json) else { return };
    if info.check().is_err() {
        return;
    }
    let mut v = floats(numbers);
    v.resize(BASE_INPUTS + 5 + 2, 0.5);
    let base: [f32; BASE_INPUTS] = v[..BASE_INPUTS].try_into().expect("five values");
    let (mut row, defaults_used) = info.inputs_for(base, payload);
    assert_eq!(row.len(), info.input_count(), "one value per input");
    assert!(defaults_used <= info.payload_features.len());
    info.clamp_input(&mut row);
    let outputs = &v[BASE_INPUTS..BASE_INPUTS + info.output_count];
    let clamped = info.clamp_output(Prediction::from_outputs(outputs));
    assert_eq!(clamped.to_vec().len(), info.output_count);
    for u in [f64::from(v[BASE_INPUTS + 5]), f64::from(v[BASE_INPUTS + 6]), 0.0, 1.0, f64::NAN] {
        let _ = info.sample_runtime_residual(f64::from(clamped.runtime_ns), u);
        let _ = info.sample_overhead_residual(f64::from(clamped.worker_overhead_ns.unwrap_or(0.0)), u);
        let _ = info.sample_cold_start(u);
        if let Some(b) = &info.host_baseline {
            let load = b.sample(u);
            assert!(load.cpu_cores >= 0.0 && load.ram_bytes >= 0.0, "a checked baseline is never negative");
        }
    }
    let _ = info.mean_cold_start();
});
