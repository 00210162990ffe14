//! Request bodies, built from a call's [`RequestParams`] and the seed.
//!
//! Bodies are made when a call is about to be sent, not stored: a run of
//! millions of calls with MiB bodies would not fit in memory. Each call's bytes
//! come from its own random stream (seed + call index), so they are the same
//! whatever order calls are built in. Thumbnailer source JPEGs are generated
//! once per distinct size and reused.
//!
//! The payload features an image declares (`features:`) are computed here
//! too, from the exact bytes that will be sent, with the one evaluation the
//! fake worker also uses ([`PayloadFeatures::eval`]).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use hyperfake_core::ImageTag;
use hyperfake_core::payload::PayloadFeatures;
use image::codecs::jpeg::JpegEncoder;
use image::{ExtendedColorType, ImageEncoder};
use rand::{Rng, RngCore};

use crate::schedule::{RequestParams, Schedule, ScheduledCall, rng, stream};

/// Builds request bodies for one schedule.
#[derive(Debug)]
pub struct Payloads {
    seed: u64,
    /// Base64 of each generated source JPEG, by (width, height, quality).
    thumbnails: HashMap<(u32, u32, u8), Arc<str>>,
    /// Declared payload features, by image (images without any are absent).
    features: HashMap<ImageTag, PayloadFeatures>,
}

impl Payloads {
    /// Generates every thumbnail source the schedule needs.
    pub fn for_schedule(schedule: &Schedule) -> Result<Payloads, image::ImageError> {
        let mut thumbnails = HashMap::new();
        for call in &schedule.calls {
            if let RequestParams::Thumbnail { source_width, source_height, quality, .. } = call.request {
                let key = (source_width, source_height, quality);
                if let std::collections::hash_map::Entry::Vacant(slot) = thumbnails.entry(key) {
                    let jpeg = source_jpeg(schedule.seed, source_width, source_height, quality)?;
                    slot.insert(Arc::from(base64::engine::general_purpose::STANDARD.encode(jpeg)));
                }
            }
        }
        Ok(Payloads { seed: schedule.seed, thumbnails, features: HashMap::new() })
    }

    /// Computes these payload features for the calls of each image.
    pub fn with_features(mut self, features: impl IntoIterator<Item = (ImageTag, PayloadFeatures)>) -> Self {
        self.features = features.into_iter().filter(|(_, f)| !f.is_empty()).collect();
        self
    }

    /// The payload feature values of `call` whose body is `body`, in
    /// declaration order; `None` when its image declares no features.
    pub fn feature_values(&self, call: &ScheduledCall, body: &[u8]) -> Option<Vec<Option<f64>>> {
        self.features.get(&call.image_tag).map(|f| f.eval(body))
    }

    /// The body of `call`.
    pub fn body(&self, call: &ScheduledCall) -> Vec<u8> {
        match &call.request {
            RequestParams::Bytes { size } => {
                let mut body = vec![0; usize::try_from(*size).unwrap_or(usize::MAX)];
                rng(self.seed, stream::PAYLOAD + call.index).fill_bytes(&mut body);
                body
            }
            RequestParams::Bfs { size, seed } => format!(r#"{{"Size":{size},"Seed":{seed}}}"#).into_bytes(),
            RequestParams::Thumbnail { source_width, source_height, quality, width, height } => {
                let image = &self.thumbnails[&(*source_width, *source_height, *quality)];
                let mut body = String::with_capacity(image.len() + 48);
                body.push_str(r#"{"image":""#);
                body.push_str(image);
                body.push_str(&format!(r#"","width":{width},"height":{height}}}"#));
                body.into_bytes()
            }
            RequestParams::Trace { duration_us, memory_mib: Some(m) } => {
                format!(r#"{{"duration_us":{duration_us},"memory_mib":{m}}}"#).into_bytes()
            }
            RequestParams::Trace { duration_us, memory_mib: None } => {
                format!(r#"{{"duration_us":{duration_us}}}"#).into_bytes()
            }
        }
    }
}

/// A photo-like test image: smooth gradients, a few soft discs and mild
/// noise, so the JPEG has a realistic size and decode cost (pure noise would
/// be unrealistically large, a flat image unrealistically small).
pub fn source_jpeg(seed: u64, width: u32, height: u32, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut rng = rng(seed, stream::THUMBNAIL_SOURCE + (u64::from(width) << 16 | u64::from(height)));
    let base: [f32; 3] =
        [rng.random_range(0.0..255.0), rng.random_range(0.0..255.0), rng.random_range(0.0..255.0)];
    let discs: Vec<(f32, f32, f32, [f32; 3])> = (0..12)
        .map(|_| {
            (
                rng.random_range(0.0..width as f32),
                rng.random_range(0.0..height as f32),
                rng.random_range(0.05..0.3) * width.min(height) as f32,
                [rng.random_range(-90.0..90.0), rng.random_range(-90.0..90.0), rng.random_range(-90.0..90.0)],
            )
        })
        .collect();
    let mut pixels = Vec::with_capacity(width as usize * height as usize * 3);
    for y in 0..height {
        for x in 0..width {
            let (fx, fy) = (x as f32 / width as f32, y as f32 / height as f32);
            let mut rgb =
                [base[0] * (1.0 - fy) + 40.0 * fx, base[1] * fx + 30.0, base[2] * (1.0 - fx) * fy + 20.0];
            for (cx, cy, r, delta) in &discs {
                let d2 = ((x as f32 - cx).powi(2) + (y as f32 - cy).powi(2)) / (r * r);
                if d2 < 1.0 {
                    let w = 1.0 - d2;
                    for c in 0..3 {
                        rgb[c] += delta[c] * w;
                    }
                }
            }
            let noise = (rng.next_u32() & 0xF) as f32 - 8.0;
            for value in rgb {
                pixels.push(to_u8(value + noise));
            }
        }
    }
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, quality).write_image(
        &pixels,
        width,
        height,
        ExtendedColorType::Rgb8,
    )?;
    Ok(out)
}

#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn to_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn source_jpegs_are_seeded_and_decodable() {
        let a = source_jpeg(1, 320, 200, 85).unwrap();
        assert_eq!(a, source_jpeg(1, 320, 200, 85).unwrap());
        assert_ne!(a, source_jpeg(2, 320, 200, 85).unwrap());
        let decoded = image::load_from_memory_with_format(&a, image::ImageFormat::Jpeg).unwrap();
        assert_eq!((decoded.width(), decoded.height()), (320, 200));
    }
}
