//! The thumbnailer function's handler, `thumbnailer::thumbnail`, on arbitrary
//! image bytes: base64 decoding, JPEG decoding, scaling and re-encoding.
//!
//! Input: target width and height (one byte each, +1), then the image bytes
//! (raw: the target base64-encodes them, so mutations hit the JPEG decoder
//! rather than the base64 alphabet). A first byte of `{` instead reads the
//! whole input as the request JSON, as the function's `handle` does.
//!
//! Bound: the target size is at most 256×256 here (the function allows
//! 4096×4096), and images whose header declares more than `MAX_SOURCE_PIXELS`
//! (256 × 256) are skipped: a 60-byte JPEG can declare 65 535 × 65 535
//! pixels, whose decode is legitimate work (the image crate's default
//! allocation limit still applies) but takes seconds. A larger image runs
//! the same decoder and scaler code, only longer: at 1 Mpixel the target
//! managed about 1 200 execs/s, too few for a million in a run.
#![no_main]

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use functions::workload::thumbnailer::{self, ThumbnailError, ThumbnailRequest};
use image::{ImageFormat, ImageReader};
use libfuzzer_sys::fuzz_target;

const MAX_SOURCE_PIXELS: u64 = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let request = if data.first() == Some(&b'{') {
        let Ok(request) = serde_json::from_slice::<ThumbnailRequest>(data) else { return };
        if request.width > 256 || request.height > 256 {
            return;
        }
        let Ok(jpeg) = STANDARD.decode(&request.image) else { return };
        if !small_enough(&jpeg) {
            return;
        }
        request
    } else {
        let [w, h, image @ ..] = data else { return };
        if !small_enough(image) {
            return;
        }
        ThumbnailRequest {
            image: STANDARD.encode(image),
            width: i64::from(*w) + 1,
            height: i64::from(*h) + 1,
        }
    };
    match thumbnailer::thumbnail(&request) {
        Ok(jpeg) => {
            let out =
                image::load_from_memory_with_format(&jpeg, ImageFormat::Jpeg).expect("output is a JPEG");
            assert_eq!((i64::from(out.width()), i64::from(out.height())), (request.width, request.height));
        }
        Err(ThumbnailError::Worker(e)) => panic!("no worker thread here: {e}"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
});

/// Whether the image's declared size is at most `MAX_SOURCE_PIXELS` (an image
/// whose header does not read is passed on: refusing it is the handler's job).
fn small_enough(jpeg: &[u8]) -> bool {
    let mut reader = ImageReader::new(Cursor::new(jpeg));
    reader.set_format(ImageFormat::Jpeg);
    reader.into_dimensions().map_or(true, |(w, h)| u64::from(w) * u64::from(h) <= MAX_SOURCE_PIXELS)
}
