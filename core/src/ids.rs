//! Identifiers. Each is a string on the wire; distinct types keep a function id
//! from being passed where an instance id is expected.

use std::fmt;

use serde::{Deserialize, Serialize};

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                Self(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }

            pub fn is_empty(&self) -> bool {
                self.0.is_empty()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_string())
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }
    };
}

string_id!(
    /// A function registered in the database (generated on creation).
    FunctionId
);
string_id!(
    /// One running instance of a function (the container id on a real worker).
    InstanceId
);
string_id!(
    /// A caller-chosen id for one call, carried through every record of it.
    RequestId
);
string_id!(
    /// A full image reference such as `hyperfaas-echo:latest`.
    ImageTag
);

/// Longest function id accepted. A generated id is a 36-byte UUID; the bound
/// keeps ids that reach logs, keys and metadata small.
pub const MAX_FUNCTION_ID_LEN: usize = 128;

/// What is wrong with a function id.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FunctionIdError {
    #[error("function_id: must not be empty")]
    Empty,
    #[error("function_id: {shown} is {len} bytes long; at most {MAX_FUNCTION_ID_LEN} are allowed")]
    TooLong {
        /// The start of the id, shortened for the message.
        shown: String,
        len: usize,
    },
    #[error("function_id: {id:?} contains {found:?}; use letters, digits, '-', '_' and '.' only")]
    Character { id: String, found: char },
}

impl FunctionId {
    /// A function id, if it is 1 to [`MAX_FUNCTION_ID_LEN`] ASCII letters,
    /// digits, `-`, `_` and `.` (a generated UUID always is).
    pub fn parse(id: impl Into<String>) -> Result<Self, FunctionIdError> {
        let id = FunctionId(id.into());
        id.validate()?;
        Ok(id)
    }

    /// Checks the grammar [`FunctionId::parse`] applies.
    pub fn validate(&self) -> Result<(), FunctionIdError> {
        let id = self.as_str();
        if id.is_empty() {
            return Err(FunctionIdError::Empty);
        }
        if id.len() > MAX_FUNCTION_ID_LEN {
            return Err(FunctionIdError::TooLong { shown: crate::image_ref::shorten(id), len: id.len() });
        }
        match id.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))) {
            Some(found) => Err(FunctionIdError::Character { id: id.to_string(), found }),
            None => Ok(()),
        }
    }
}

impl ImageTag {
    /// The repository part without the tag: `hyperfaas-echo` for
    /// `hyperfaas-echo:latest`. Model files are named after it.
    pub fn name(&self) -> &str {
        match self.0.rfind(':') {
            // A ':' before the last '/' belongs to a registry port, not a tag.
            Some(i) if !self.0[i..].contains('/') => &self.0[..i],
            _ => &self.0,
        }
    }

    /// The tag with `:latest` added when it has none.
    pub fn normalized(&self) -> ImageTag {
        if self.name().len() == self.0.len() { ImageTag(format!("{}:latest", self.0)) } else { self.clone() }
    }
}

/// Whether `id` can name a run: 1 to 128 letters, digits, `-`, `_` and `.`.
/// The load generator and the collector both apply it, since a run id names
/// the run database (`training_data/<run_id>.db`) and goes into request
/// metadata.
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 128 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_names() {
        assert_eq!(ImageTag::from("hyperfaas-echo:latest").name(), "hyperfaas-echo");
        assert_eq!(ImageTag::from("hyperfaas-echo").name(), "hyperfaas-echo");
        assert_eq!(ImageTag::from("localhost:5000/x").name(), "localhost:5000/x");
        assert_eq!(ImageTag::from("hyperfaas-echo").normalized().as_str(), "hyperfaas-echo:latest");
        assert_eq!(ImageTag::from("a:v1").normalized().as_str(), "a:v1");
    }

    #[test]
    fn function_ids_are_bounded() {
        for good in ["3f1c7a52-7d0e-4b7e-9c1a-2f0a8a6c9d11", "f-1", "a.b_c", &"x".repeat(128)] {
            assert_eq!(FunctionId::parse(good).map(|id| id.0), Ok(good.to_string()));
        }
        assert_eq!(FunctionId::parse(""), Err(FunctionIdError::Empty));
        let long = "x".repeat(129);
        let err = FunctionId::parse(long.clone()).unwrap_err();
        assert!(matches!(err, FunctionIdError::TooLong { len: 129, .. }), "{err:?}");
        assert!(err.to_string().len() < 150, "{err}");
        for (bad, found) in [("a b", ' '), ("a/b", '/'), ("ü", 'ü'), ("a\nb", '\n')] {
            let err = FunctionId::parse(bad).unwrap_err();
            assert_eq!(err, FunctionIdError::Character { id: bad.to_string(), found });
            assert!(err.to_string().starts_with("function_id: "), "{err}");
        }
    }

    #[test]
    fn run_ids_are_safe_in_file_names_and_metadata() {
        assert!(valid_run_id("20261123T031500Z-3fa2c1"));
        assert!(valid_run_id("baseline_1.v2"));
        for bad in ["", "a/b", "../x", "a b", "ü", &"x".repeat(129)] {
            assert!(!valid_run_id(bad), "{bad:?}");
        }
    }
}
