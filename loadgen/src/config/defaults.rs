//! Defaults and limits of the workload file: typed constants, each saying
//! where its value comes from.

use std::time::Duration;

use hyperfake_core::Bytes;

/// Per-call deadline when the file gives no `timeout`. HyperFaaS's example
/// files use 60 s; a call that has not returned by then is recorded as
/// `DEADLINE_EXCEEDED` rather than kept in flight for the rest of the run.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(60);
/// Echo/generic body sizes when a data provider gives none: the constants the
/// original generator hard-coded (256..=1024 bytes).
pub const DEFAULT_BODY_SIZE: (Bytes, Bytes) = (Bytes(256), Bytes(1024));
/// BFS graph sizes when a data provider gives none: the original's constants.
pub const DEFAULT_BFS_NODES: (u32, u32) = (100, 250);
/// The thumbnailer source image: the original fetched a 1920×1080 photo.
pub const DEFAULT_THUMBNAIL_SOURCE: (u32, u32) = (1920, 1080);
/// Thumbnail sizes drawn per call: the original drew width 1..=1440, height 1..=900.
pub const DEFAULT_THUMBNAIL_WIDTH: (u32, u32) = (1, 1440);
pub const DEFAULT_THUMBNAIL_HEIGHT: (u32, u32) = (1, 900);
/// JPEG quality of the generated source image (a typical camera/web setting).
pub const DEFAULT_JPEG_QUALITY: u8 = 85;
/// Largest request body a data provider may produce: the shared gRPC limit,
/// less room for the rest of the message.
pub const MAX_BODY_SIZE: Bytes = Bytes(hyperfake_core::defaults::MAX_MESSAGE_SIZE as u64 - 64 * 1024);

/// Most phases one pattern may generate: each is a schedule section of its
/// own, and a typo (`phase_count: 4000000000`) would otherwise exhaust memory
/// during validation (found by fuzzing).
pub const MAX_PHASE_COUNT: u32 = 100_000;

/// Most functions one image may be created as (`copies`): enough for a
/// many-tenant experiment, small enough that a typo cannot create millions.
pub const MAX_COPIES: u32 = 10_000;

/// How long a warm-up (`warmup:`) waits for its instances when the file says
/// not: a cold start here takes about a second, and a few dozen of them on
/// two cores queue behind each other.
pub const DEFAULT_WARMUP_TIMEOUT: Duration = Duration::from_secs(120);
/// The start of the schedule `warmup: {instances: auto}` sizes for when the
/// file gives no `window` and there is no trace (with a trace: one trace minute).
pub const DEFAULT_WARMUP_WINDOW: Duration = Duration::from_secs(60);
/// Most instances a warm-up brings one function to, so a typo cannot start
/// thousands of containers.
pub const MAX_WARMUP_INSTANCES: u32 = 64;
