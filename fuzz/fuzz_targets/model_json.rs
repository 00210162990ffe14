//! JSON model files: `ModelSet::load` on the file (every entry converted to
//! ns and checked), then `predict_rows` on arbitrary rows and `clamp_input` /
//! `clamp_output` on the results.
//!
//! Input: the file's bytes, then optionally a NUL byte and the rows as
//! little-endian f32s (cut into rows of the model's input count). The file is
//! written to a scratch file per exec because the loader's API takes a path.
#![no_main]

use hyperfake_fuzz::{floats, scratch_dir, split};
use hyperfake_model::ModelSet;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (file, rows) = split(data, 0);
    let path = scratch_dir().join("model.json");
    std::fs::write(&path, file).expect("the scratch file can be written");
    let set = match ModelSet::load(&path) {
        Ok(set) => set,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let values = floats(rows);
    for (_, model) in set.iter() {
        let info = model.info();
        assert_eq!(info.check(), Ok(()), "a loaded model passes its own check");
        let width = info.input_count();
        let mut rows: Vec<Vec<f32>> = values.chunks(width).map(<[f32]>::to_vec).collect();
        rows.retain(|r| r.len() == width);
        rows.push(vec![0.0; width]);
        for row in &mut rows {
            info.clamp_input(row);
        }
        let predictions = model.predict_rows(&rows).expect("rows of the model's width predict");
        assert_eq!(predictions.len(), rows.len());
        for p in predictions {
            let clamped = info.clamp_output(p);
            assert_eq!(clamped.to_vec().len(), info.output_count, "clamping keeps the output count");
        }
        // A row of another width is an error, never a panic.
        assert!(model.predict_one(vec![0.0; width + 1]).is_err());
    }
});
