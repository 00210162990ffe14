//! A registered function, and its one conversion from and to the wire's
//! `FunctionRecord`. The store and the client both validate through it.

use hyperfake_core::{FunctionConfig, FunctionConfigError, FunctionId, FunctionIdError, ImageTag, Nanos};
use proto::convert;
use proto::database::FunctionRecord;

/// A function registered in the store.
#[derive(Clone, Debug, PartialEq)]
pub struct Function {
    /// Generated on creation (a UUID v4).
    pub id: FunctionId,
    pub image_tag: ImageTag,
    pub config: FunctionConfig,
    /// Creation time, nanoseconds since the Unix epoch on the database's host.
    pub created_at: Nanos,
}

/// A record, stored or received, that does not describe a valid function.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecord {
    #[error("function_id: missing")]
    MissingId,
    #[error(transparent)]
    Id(#[from] FunctionIdError),
    #[error("function {id}: {error}")]
    Config { id: FunctionId, error: FunctionConfigError },
    #[error("function {id}: created_at_ns {value} is before the Unix epoch")]
    CreatedAt { id: FunctionId, value: i64 },
}

impl TryFrom<FunctionRecord> for Function {
    type Error = InvalidRecord;

    /// Applies the same checks as a `Create` request (`proto::convert`).
    fn try_from(record: FunctionRecord) -> Result<Self, InvalidRecord> {
        let FunctionRecord { function_id, image_tag, config, created_at_ns } = record;
        let id = convert::function_id(function_id.as_ref()).ok_or(InvalidRecord::MissingId)?;
        id.validate()?;
        let invalid = |error| InvalidRecord::Config { id: id.clone(), error };
        let image_tag = convert::image_tag(image_tag.as_ref()).map_err(invalid)?;
        let config = convert::function_config(config.as_ref()).map_err(invalid)?;
        let created_at = u64::try_from(created_at_ns)
            .map(Nanos)
            .map_err(|_| InvalidRecord::CreatedAt { id: id.clone(), value: created_at_ns })?;
        Ok(Function { id, image_tag, config, created_at })
    }
}

impl From<&Function> for FunctionRecord {
    fn from(function: &Function) -> Self {
        FunctionRecord {
            function_id: Some((&function.id).into()),
            image_tag: Some((&function.image_tag).into()),
            config: Some((&function.config).into()),
            created_at_ns: function.created_at.as_i64(),
        }
    }
}

#[cfg(test)]
mod tests {
    use hyperfake_core::Bytes;

    use super::*;

    fn echo() -> Function {
        Function {
            id: FunctionId::from("f-1"),
            image_tag: ImageTag::from("hyperfaas-echo:latest"),
            config: FunctionConfig {
                memory: Bytes::mib(64),
                cpu: Some(hyperfake_core::CpuQuota { period_us: 100_000, quota_us: 50_000 }),
                idle_timeout: Some(std::time::Duration::from_secs(30)),
                max_concurrency: Some(4),
            },
            created_at: Nanos(1_700_000_000_000_000_000),
        }
    }

    #[test]
    fn round_trips_through_the_wire_record() {
        let function = echo();
        assert_eq!(Function::try_from(FunctionRecord::from(&function)), Ok(function));
    }

    #[test]
    fn rejects_records_that_would_not_pass_create() {
        let valid = FunctionRecord::from(&echo());
        let id = FunctionId::from("f-1");

        let no_id = FunctionRecord { function_id: None, ..valid.clone() };
        assert_eq!(Function::try_from(no_id), Err(InvalidRecord::MissingId));

        let mut zero_memory = valid.clone();
        zero_memory.config.as_mut().unwrap().memory = 0;
        assert_eq!(
            Function::try_from(zero_memory),
            Err(InvalidRecord::Config { id: id.clone(), error: FunctionConfigError::Memory(0) })
        );

        let no_tag = FunctionRecord { image_tag: None, ..valid.clone() };
        assert_eq!(
            Function::try_from(no_tag),
            Err(InvalidRecord::Config { id: id.clone(), error: FunctionConfigError::MissingImageTag })
        );

        let bad_id = FunctionRecord {
            function_id: Some(proto::common::FunctionId { id: "a b".into() }),
            ..valid.clone()
        };
        assert_eq!(
            Function::try_from(bad_id),
            Err(InvalidRecord::Id(FunctionIdError::Character { id: "a b".into(), found: ' ' }))
        );

        let mut registry = valid.clone();
        registry.image_tag = Some(proto::common::ImageTag { tag: "hyperfaas-evil.example.com/x".into() });
        let err = Function::try_from(registry).unwrap_err();
        assert!(
            matches!(&err, InvalidRecord::Config { error: FunctionConfigError::ImageTag(_), .. }),
            "{err:?}"
        );

        let before_epoch = FunctionRecord { created_at_ns: -1, ..valid };
        assert_eq!(Function::try_from(before_epoch), Err(InvalidRecord::CreatedAt { id, value: -1 }));
    }
}
