//! Wire → core types: protobuf bytes decoded as the messages that carry a
//! function's identity and config, then `proto::convert` (config validation,
//! image allow-list, ids, timestamps, durations), the database's one record
//! conversion (`database::Function::try_from`), and the `grpc-timeout`
//! header parser. Accepted values must convert back to the same wire values.
//!
//! Input: one byte choosing the message, then its encoded bytes.
#![no_main]

use std::time::Duration;

use database::Function;
use hyperfake_core::FunctionConfig;
use libfuzzer_sys::fuzz_target;
use prost::Message;
use proto::{common, controller, convert, database as db, deadline, leaf};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, bytes)) = data.split_first() else { return };
    match kind % 4 {
        0 => {
            let Ok(request) = leaf::CreateFunctionRequest::decode(bytes) else { return };
            let _ = convert::function_id(request.function_id.as_ref());
            if let Ok(tag) = convert::image_tag(request.image_tag.as_ref()) {
                let again = convert::image_tag(Some(&common::ImageTag::from(&tag)));
                assert_eq!(again, Ok(tag), "an accepted image tag is accepted again unchanged");
            }
            if let Ok(config) = convert::function_config(request.config.as_ref()) {
                config_round_trips(&config);
            }
        }
        1 => {
            let Ok(record) = db::FunctionRecord::decode(bytes) else { return };
            match Function::try_from(record) {
                Ok(function) => {
                    let back = db::FunctionRecord::from(&function);
                    assert_eq!(Function::try_from(back), Ok(function), "a valid record round-trips");
                }
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
        2 => {
            let Ok(update) = controller::StatusUpdate::decode(bytes) else { return };
            let _ = convert::instance_id(update.instance_id.as_ref());
            let _ = convert::function_id(update.function_id.as_ref());
            if let Some(ts) = &update.timestamp {
                let ns = convert::timestamp_nanos(ts);
                let back = convert::timestamp(ns);
                assert_eq!(convert::timestamp_nanos(&back), ns, "a timestamp round-trips");
            }
            if let Some(d) = convert::duration_from_ns(update.start_duration_ns) {
                assert_eq!(convert::duration_to_ns(d.as_duration()), d.as_i64());
            }
        }
        _ => {
            let Ok(text) = std::str::from_utf8(bytes) else { return };
            if let Some(d) = deadline::parse_grpc_timeout(text) {
                let encoded = deadline::encode_grpc_timeout(d);
                let back = deadline::parse_grpc_timeout(&encoded).expect("an encoded timeout parses");
                assert!(back <= d, "re-encoding never lengthens a deadline");
            }
            let _ = deadline::encode_grpc_timeout(Duration::from_nanos(bytes.len() as u64));
        }
    }
});

fn config_round_trips(config: &FunctionConfig) {
    let wire = common::Config::from(config);
    let back = convert::function_config(Some(&wire)).expect("a validated config is valid on the wire");
    // The wire's timeout and max_concurrency are i32: larger values saturate.
    if config.idle_timeout.is_none_or(|d| d.as_secs() <= i32::MAX as u64)
        && config.max_concurrency.is_none_or(|c| c <= i32::MAX as u32)
    {
        assert_eq!(&back, config, "a config round-trips through the wire");
    }
}
