//! `thumbnailer`: scales a JPEG to a given size, after SeBS's
//! `210.thumbnailer` as HyperFaaS runs it.
//!
//! Request (JSON): `{"image": "<base64 JPEG>", "width": W, "height": H}`
//! (standard base64 with padding, as Go encodes `[]byte`). W and H are
//! 1..=[`MAX_DIMENSION`]; the image is scaled to exactly W×H (aspect ratio not
//! kept, as in HyperFaaS) with a bilinear filter.
//!
//! Response: the thumbnail as JPEG bytes (quality [`JPEG_QUALITY`]).

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{ImageFormat, ImageReader};
use serde::Deserialize;

/// Largest accepted width or height: keeps the output buffer (W·H·3 bytes)
/// and the encoded JPEG well under the message limit.
pub const MAX_DIMENSION: i64 = 4096;
/// Go's `image/jpeg` default, which HyperFaaS's thumbnailer uses.
pub const JPEG_QUALITY: u8 = 75;

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbnailRequest {
    /// The JPEG, base64-encoded.
    pub image: String,
    pub width: i64,
    pub height: i64,
}

/// Why a thumbnail could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ThumbnailError {
    #[error("invalid thumbnailer request (expected {{\"image\": base64, \"width\": W, \"height\": H}}): {0}")]
    Json(#[from] serde_json::Error),
    #[error("width x height: {width}x{height} is out of range, each must be in 1..={MAX_DIMENSION}")]
    Size { width: i64, height: i64 },
    #[error("image: not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("image: not a decodable JPEG: {0}")]
    Decode(#[source] image::ImageError),
    #[error("encoding the thumbnail as JPEG failed: {0}")]
    Encode(#[source] image::ImageError),
    #[error("thumbnailer worker thread failed: {0}")]
    Worker(String),
}

pub async fn handle(input: Bytes) -> Result<Vec<u8>, ThumbnailError> {
    let request: ThumbnailRequest = serde_json::from_slice(&input)?;
    // Decoding and scaling are CPU work: keep them off the gRPC threads.
    tokio::task::spawn_blocking(move || thumbnail(&request))
        .await
        .map_err(|e| ThumbnailError::Worker(e.to_string()))?
}

/// Decodes, scales and re-encodes the request's image.
pub fn thumbnail(request: &ThumbnailRequest) -> Result<Vec<u8>, ThumbnailError> {
    let ThumbnailRequest { image, width, height } = request;
    let dimension = |d: i64| u32::try_from(d).ok().filter(|d| (1..=MAX_DIMENSION).contains(&i64::from(*d)));
    let (Some(w), Some(h)) = (dimension(*width), dimension(*height)) else {
        return Err(ThumbnailError::Size { width: *width, height: *height });
    };
    let jpeg = STANDARD.decode(image)?;
    let mut reader = ImageReader::new(Cursor::new(jpeg));
    reader.set_format(ImageFormat::Jpeg);
    let source = reader.decode().map_err(ThumbnailError::Decode)?.to_rgb8();
    let scaled = imageops::resize(&source, w, h, FilterType::Triangle);
    let mut out = Vec::new();
    JpegEncoder::new_with_quality(&mut out, JPEG_QUALITY)
        .encode_image(&scaled)
        .map_err(ThumbnailError::Encode)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use image::{GenericImageView, RgbImage};

    use super::*;

    fn jpeg(width: u32, height: u32) -> Vec<u8> {
        let picture = RgbImage::from_fn(width, height, |x, y| {
            image::Rgb([u8::try_from(x * 255 / width).unwrap(), u8::try_from(y * 255 / height).unwrap(), 128])
        });
        let mut out = Vec::new();
        JpegEncoder::new_with_quality(&mut out, 90).encode_image(&picture).unwrap();
        out
    }

    fn request(image: &[u8], width: i64, height: i64) -> ThumbnailRequest {
        ThumbnailRequest { image: STANDARD.encode(image), width, height }
    }

    #[test]
    fn scales_to_the_requested_size() {
        let source = jpeg(320, 240);
        for (w, h) in [(80, 60), (100, 100), (640, 10)] {
            let out = thumbnail(&request(&source, w, h)).unwrap();
            let decoded = image::load_from_memory_with_format(&out, ImageFormat::Jpeg).unwrap();
            let (dw, dh) = decoded.dimensions();
            assert_eq!((i64::from(dw), i64::from(dh)), (w, h));
        }
    }

    #[test]
    fn keeps_the_picture() {
        // Left edge dark red channel, right edge bright: the gradient survives scaling.
        let out = thumbnail(&request(&jpeg(320, 240), 64, 48)).unwrap();
        let small = image::load_from_memory(&out).unwrap().to_rgb8();
        assert!(small.get_pixel(2, 24)[0] < 40, "{:?}", small.get_pixel(2, 24));
        assert!(small.get_pixel(61, 24)[0] > 215, "{:?}", small.get_pixel(61, 24));
    }

    #[test]
    fn names_what_is_wrong() {
        let source = jpeg(16, 16);
        assert!(matches!(
            thumbnail(&request(&source, 0, 10)),
            Err(ThumbnailError::Size { width: 0, height: 10 })
        ));
        assert!(matches!(thumbnail(&request(&source, 10, -1)), Err(ThumbnailError::Size { .. })));
        assert!(matches!(
            thumbnail(&request(&source, MAX_DIMENSION + 1, 10)),
            Err(ThumbnailError::Size { .. })
        ));
        let bad_base64 = ThumbnailRequest { image: "not base64!".into(), width: 8, height: 8 };
        assert!(matches!(thumbnail(&bad_base64), Err(ThumbnailError::Base64(_))));
        assert!(matches!(thumbnail(&request(b"GIF89a not a jpeg", 8, 8)), Err(ThumbnailError::Decode(_))));
        let truncated = &source[..source.len() / 3];
        assert!(matches!(thumbnail(&request(truncated, 8, 8)), Err(ThumbnailError::Decode(_))));
        assert!(
            ThumbnailError::Base64(base64::DecodeError::InvalidPadding).to_string().starts_with("image:")
        );
    }

    #[tokio::test]
    async fn malformed_json_is_a_handler_error() {
        for bad in [&b"{"[..], b"[]", b"{\"image\": 5, \"width\": 1, \"height\": 1}", b"{\"width\": 1}"] {
            let error = handle(Bytes::copy_from_slice(bad)).await.unwrap_err();
            assert!(matches!(error, ThumbnailError::Json(_)), "{error}");
        }
    }
}
