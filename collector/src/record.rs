//! What the collector records: the rows of its tables (types in
//! `rundb::collector`), built from the wire messages here and nowhere else.
//!
//! proto3 cannot say "absent" for a scalar, so only what the wire *can* leave
//! out becomes `NULL`: a missing instance or function id, a missing event
//! timestamp, a missing exit code, a sample timestamp of 0 (the worker never
//! sends that for a real sample). A container whose cgroup could not be read
//! is left out of the worker's sample altogether, so it has no row at all
//! rather than a row of zeros. Unsigned wire values too large for SQLite's
//! `INTEGER` become `NULL`, never a wrapped or clamped number.

use std::sync::Arc;

use proto::controller::{ContainerSample, Event, ResourceSample, Status, StatusUpdate};
pub use rundb::collector::{ContainerRow, EventRow, SampleRows};

/// What a follower hands the writer.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    Event(EventRow),
    Sample(SampleRows),
}

// === from the wire ===

/// The `instance_events` row of a lifecycle event from `worker`.
pub fn event_row(worker: &Arc<str>, update: &StatusUpdate) -> EventRow {
    EventRow {
        worker: Arc::clone(worker),
        instance_id: proto::convert::instance_id(update.instance_id.as_ref()).map(|i| i.0),
        function_id: proto::convert::function_id(update.function_id.as_ref()).map(|f| f.0),
        event: event_name(update.event),
        status: status_name(update.status),
        timestamp_ns: update.timestamp.as_ref().map(|t| proto::convert::timestamp_nanos(t).as_i64()),
        detail: update.detail.clone(),
        exit_code: update.exit_code,
        oom_killed: update.oom_killed,
        start_duration_ns: proto::convert::duration_from_ns(update.start_duration_ns).map(|d| d.as_i64()),
    }
}

/// The event's name as stored: the proto name without its `EVENT_` prefix.
pub fn event_name(wire: i32) -> String {
    match Event::try_from(wire) {
        Ok(event) => event.as_str_name().trim_start_matches("EVENT_").to_string(),
        Err(_) => format!("UNKNOWN({wire})"),
    }
}

fn status_name(wire: i32) -> String {
    match Status::try_from(wire) {
        Ok(status) => status.as_str_name().trim_start_matches("STATUS_").to_string(),
        Err(_) => format!("UNKNOWN({wire})"),
    }
}

/// The `worker_samples` and `container_samples` rows of a resource sample from `worker`.
pub fn sample_rows(worker: &Arc<str>, sample: &ResourceSample) -> SampleRows {
    SampleRows {
        worker: Arc::clone(worker),
        timestamp_ns: (sample.timestamp_ns != 0).then_some(sample.timestamp_ns),
        cpu_cores: sample.worker_cpu_cores.filter(|c| c.is_finite()),
        ram_bytes: sample.worker_ram_bytes.and_then(|b| i64::try_from(b).ok()),
        containers: sample.containers.iter().map(container_row).collect(),
    }
}

fn container_row(c: &ContainerSample) -> ContainerRow {
    ContainerRow {
        instance_id: proto::convert::instance_id(c.instance_id.as_ref()).map(|i| i.0),
        function_id: proto::convert::function_id(c.function_id.as_ref()).map(|f| f.0),
        cpu_usage_ns: i64::try_from(c.cpu_usage_ns).ok(),
        memory_bytes: i64::try_from(c.memory_bytes).ok(),
    }
}

// === impl Record ===

impl Record {
    /// Rows this record adds to the database (batches are counted in rows).
    pub fn rows(&self) -> usize {
        match self {
            Record::Event(_) => 1,
            Record::Sample(s) => s.rows(),
        }
    }
}

#[cfg(test)]
mod tests {
    use proto::common;

    use super::*;

    #[test]
    fn absent_wire_fields_become_null_not_zero() {
        let worker: Arc<str> = Arc::from("w:1");
        let update =
            StatusUpdate { event: Event::Down.into(), status: Status::Failed.into(), ..Default::default() };
        let row = event_row(&worker, &update);
        assert_eq!(row.event, "DOWN");
        assert_eq!(row.status, "FAILED");
        assert_eq!(
            (row.instance_id, row.function_id, row.timestamp_ns, row.exit_code),
            (None, None, None, None)
        );

        let sample = ResourceSample {
            timestamp_ns: 0,
            containers: vec![ContainerSample {
                cpu_usage_ns: u64::MAX,
                memory_bytes: 5,
                ..Default::default()
            }],
            worker_cpu_cores: Some(f64::NAN),
            worker_ram_bytes: Some(u64::MAX),
        };
        let rows = sample_rows(&worker, &sample);
        assert_eq!((rows.timestamp_ns, rows.cpu_cores, rows.ram_bytes), (None, None, None));
        assert_eq!(
            rows.containers,
            vec![ContainerRow {
                instance_id: None,
                function_id: None,
                cpu_usage_ns: None,
                memory_bytes: Some(5)
            }]
        );
        assert_eq!(rows.rows(), 2);
    }

    #[test]
    fn present_fields_are_kept() {
        let worker: Arc<str> = Arc::from("w:1");
        let update = StatusUpdate {
            instance_id: Some(common::InstanceId { id: "i".into() }),
            function_id: Some(common::FunctionId { id: "f".into() }),
            event: Event::Start.into(),
            timestamp: Some(prost_types_timestamp(1_700_000_000_123_456_789)),
            exit_code: Some(137),
            oom_killed: true,
            start_duration_ns: Some(412_000_000),
            ..Default::default()
        };
        let row = event_row(&worker, &update);
        assert_eq!(row.instance_id.as_deref(), Some("i"));
        assert_eq!(row.function_id.as_deref(), Some("f"));
        assert_eq!(row.event, "START");
        assert_eq!(row.status, "SUCCESS");
        assert_eq!(row.timestamp_ns, Some(1_700_000_000_123_456_789));
        assert_eq!((row.exit_code, row.oom_killed), (Some(137), true));
        assert_eq!(row.start_duration_ns, Some(412_000_000));
        assert!(!row.is_call_event());
    }

    #[test]
    fn every_event_has_its_schema_name() {
        let names: Vec<String> = (0..=6).map(event_name).collect();
        assert_eq!(names, ["RESPONSE", "DOWN", "TIMEOUT", "START", "STOP", "CALL", "RUNNING"]);
        assert_eq!(event_name(42), "UNKNOWN(42)");
    }

    fn prost_types_timestamp(ns: u64) -> prost_types::Timestamp {
        proto::convert::timestamp(hyperfake_core::Nanos(ns))
    }
}
