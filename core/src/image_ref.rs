//! Image references a worker may start, parsed with Docker's reference grammar.
//!
//! A string prefix is not an allow-list: Docker reads the first path component
//! of `hyperfaas-evil.example.com/x` as a registry (it contains a `.`), so that
//! reference would be pulled from `hyperfaas-evil.example.com`. [`ImageRef`]
//! accepts only local images with no registry and no path:
//!
//! ```text
//! <prefix><name>[:<tag>][@sha256:<64 hex digits>]      at most 255 bytes
//! name   [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*             Docker's path component
//! tag    [A-Za-z0-9_][A-Za-z0-9._-]{0,127}
//! ```
//!
//! The prefix is [`IMAGE_PREFIX`] (`hyperfaas-`) unless a worker is configured
//! with others ([`ImageRef::parse_allowed`]).
//!
//! ```
//! use hyperfake_core::image_ref::ImageRef;
//! let echo = ImageRef::parse("hyperfaas-echo:latest").unwrap();
//! assert_eq!((echo.repository(), echo.name(), echo.tag()), ("hyperfaas-echo", "echo", Some("latest")));
//! assert!(ImageRef::parse("hyperfaas-evil.example.com/x").is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use crate::defaults::IMAGE_PREFIX;
use crate::ids::ImageTag;

/// Longest reference Docker accepts (`reference.NameTotalLengthMax`).
pub const MAX_REFERENCE_LEN: usize = 255;
/// Longest tag Docker accepts.
pub const MAX_TAG_LEN: usize = 128;
/// The one digest algorithm accepted, and the length of its hex encoding.
const DIGEST_ALGORITHM: &str = "sha256:";
const DIGEST_HEX_LEN: usize = 64;

/// A validated image reference: `<prefix><name>[:tag][@sha256:digest]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// `<prefix><name>`, e.g. `hyperfaas-echo`.
    repository: String,
    /// Where `<name>` starts in `repository` (the prefix's length).
    name_start: usize,
    tag: Option<String>,
    /// `sha256:<64 lowercase hex digits>`.
    digest: Option<String>,
}

/// What is wrong with an image reference; every variant names the reference.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImageRefError {
    #[error("image reference is empty")]
    Empty,
    #[error("image reference {shown} is {len} bytes long; at most {MAX_REFERENCE_LEN} are allowed")]
    TooLong {
        /// The start of the reference, shortened for the message.
        shown: String,
        len: usize,
    },
    #[error(
        "image reference {reference:?} has a path ({first:?} before '/'): only local images without \
         registry or path are allowed (Docker reads a first component containing '.' or ':', or \
         \"localhost\", as a registry to pull from)"
    )]
    Path { reference: String, first: String },
    #[error("image reference {reference:?}: repository {repository:?} {problem}")]
    Repository { reference: String, repository: String, problem: RepositoryProblem },
    #[error("image reference {reference:?}: repository {repository:?} is not one of {}", expected(allowed))]
    NotAllowed { reference: String, repository: String, allowed: Vec<String> },
    #[error(
        "image reference {reference:?}: tag {tag:?} must be 1 to {MAX_TAG_LEN} of A-Z a-z 0-9 '_' '.' '-', \
         not starting with '.' or '-'"
    )]
    Tag { reference: String, tag: String },
    #[error(
        "image reference {reference:?}: digest {digest:?} must be {DIGEST_ALGORITHM} followed by \
         {DIGEST_HEX_LEN} lowercase hex digits"
    )]
    Digest { reference: String, digest: String },
}

/// Why a repository does not match Docker's path-component grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RepositoryProblem {
    Uppercase,
    Grammar,
}

impl fmt::Display for RepositoryProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RepositoryProblem::Uppercase => "must be lowercase (Docker refuses uppercase repositories)",
            RepositoryProblem::Grammar => {
                "must be lowercase letters and digits separated by '.', '_', '__' or runs of '-'"
            }
        })
    }
}

fn expected(allowed: &[String]) -> String {
    let each: Vec<String> = allowed.iter().map(|p| format!("{p}<name>")).collect();
    each.join(", ")
}

impl ImageRef {
    /// Parses a reference allowed by the default prefix [`IMAGE_PREFIX`].
    pub fn parse(reference: &str) -> Result<Self, ImageRefError> {
        Self::parse_allowed(reference, &[IMAGE_PREFIX])
    }

    /// Parses a reference whose repository is one of `prefixes` followed by a
    /// name matching Docker's path-component grammar.
    pub fn parse_allowed<S: AsRef<str>>(reference: &str, prefixes: &[S]) -> Result<Self, ImageRefError> {
        if reference.is_empty() {
            return Err(ImageRefError::Empty);
        }
        if reference.len() > MAX_REFERENCE_LEN {
            return Err(ImageRefError::TooLong { shown: shorten(reference), len: reference.len() });
        }
        let owned = || reference.to_string();
        if let Some((first, _)) = reference.split_once('/') {
            return Err(ImageRefError::Path { reference: owned(), first: first.to_string() });
        }
        let (named, digest) = match reference.split_once('@') {
            Some((named, digest)) => (named, Some(digest)),
            None => (reference, None),
        };
        if let Some(digest) = digest.filter(|d| !valid_digest(d)) {
            return Err(ImageRefError::Digest { reference: owned(), digest: digest.to_string() });
        }
        let (repository, tag) = match named.rsplit_once(':') {
            Some((repository, tag)) => (repository, Some(tag)),
            None => (named, None),
        };
        if let Some(tag) = tag.filter(|t| !valid_tag(t)) {
            return Err(ImageRefError::Tag { reference: owned(), tag: tag.to_string() });
        }
        if !valid_component(repository) {
            let problem = if repository.bytes().any(|b| b.is_ascii_uppercase()) {
                RepositoryProblem::Uppercase
            } else {
                RepositoryProblem::Grammar
            };
            return Err(ImageRefError::Repository {
                reference: owned(),
                repository: repository.to_string(),
                problem,
            });
        }
        let prefix = prefixes
            .iter()
            .map(AsRef::as_ref)
            .find(|p| repository.strip_prefix(*p).is_some_and(valid_component));
        let Some(prefix) = prefix else {
            return Err(ImageRefError::NotAllowed {
                reference: owned(),
                repository: repository.to_string(),
                allowed: prefixes.iter().map(|p| p.as_ref().to_string()).collect(),
            });
        };
        Ok(ImageRef {
            repository: repository.to_string(),
            name_start: prefix.len(),
            tag: tag.map(str::to_string),
            digest: digest.map(str::to_string),
        })
    }

    /// `<prefix><name>`, e.g. `hyperfaas-echo`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The name after the allowed prefix, e.g. `echo`.
    pub fn name(&self) -> &str {
        &self.repository[self.name_start..]
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// `sha256:<64 hex digits>`, if the reference pins one.
    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    /// The reference as the [`ImageTag`] the rest of hyperfake passes around.
    pub fn image_tag(&self) -> ImageTag {
        ImageTag::new(self.to_string())
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageRef {
    type Err = ImageRefError;

    fn from_str(s: &str) -> Result<Self, ImageRefError> {
        ImageRef::parse(s)
    }
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`: Docker's path component.
fn valid_component(s: &str) -> bool {
    let mut separator = String::new();
    let mut started = false;
    for c in s.chars() {
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            if !separator.is_empty() {
                let ok =
                    matches!(separator.as_str(), "." | "_" | "__") || separator.bytes().all(|b| b == b'-');
                if !ok || !started {
                    return false;
                }
                separator.clear();
            }
            started = true;
        } else if matches!(c, '.' | '_' | '-') {
            separator.push(c);
        } else {
            return false;
        }
    }
    started && separator.is_empty()
}

/// `[A-Za-z0-9_][A-Za-z0-9._-]{0,127}`.
fn valid_tag(tag: &str) -> bool {
    let mut bytes = tag.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_');
    first_ok && tag.len() <= MAX_TAG_LEN && bytes.all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
}

/// `sha256:` and 64 lowercase hex digits.
fn valid_digest(digest: &str) -> bool {
    digest.strip_prefix(DIGEST_ALGORITHM).is_some_and(|hex| {
        hex.len() == DIGEST_HEX_LEN && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

/// The first 48 characters of `s`, quoted, with `...` when cut.
pub(crate) fn shorten(s: &str) -> String {
    const SHOWN: usize = 48;
    match s.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{:?}...", &s[..end]),
        None => format!("{s:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ImageRef, ImageRefError> {
        ImageRef::parse(s)
    }

    const DIGEST: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn accepts_local_hyperfaas_images() {
        let echo = parse("hyperfaas-echo:latest").unwrap();
        assert_eq!(
            (echo.repository(), echo.name(), echo.tag(), echo.digest()),
            ("hyperfaas-echo", "echo", Some("latest"), None)
        );
        assert_eq!(echo.to_string(), "hyperfaas-echo:latest");
        assert_eq!(echo.image_tag(), ImageTag::from("hyperfaas-echo:latest"));

        for good in [
            "hyperfaas-echo",
            "hyperfaas-thumbnailer:v2",
            "hyperfaas-bfs-json:latest",
            "hyperfaas-a.b_c__d---e9:_x.Y-1",
            &format!("hyperfaas-echo@{DIGEST}"),
            &format!("hyperfaas-echo:latest@{DIGEST}"),
            &format!("hyperfaas-echo:{}", "t".repeat(128)),
        ] {
            let parsed = parse(good).unwrap_or_else(|e| panic!("{good}: {e}"));
            assert_eq!(parsed.to_string(), good);
        }
        let pinned = parse(&format!("hyperfaas-echo:v1@{DIGEST}")).unwrap();
        assert_eq!((pinned.tag(), pinned.digest()), (Some("v1"), Some(DIGEST)));
    }

    #[test]
    fn a_registry_or_path_is_refused_even_after_the_prefix() {
        for evil in [
            "hyperfaas-evil.example.com/x",
            "hyperfaas-evil.example.com/x:latest",
            "hyperfaas-x:5000/y",
            "localhost/hyperfaas-echo",
            "docker.io/library/hyperfaas-echo:latest",
            "hyperfaas-echo/sub",
        ] {
            let err = parse(evil).unwrap_err();
            assert!(
                matches!(&err, ImageRefError::Path { reference, .. } if reference == evil),
                "{evil}: {err}"
            );
            assert!(err.to_string().contains(evil), "{err}");
            assert!(err.to_string().contains("registry"), "{err}");
        }
    }

    #[test]
    fn the_repository_must_be_the_prefix_and_a_lowercase_name() {
        let err = parse("hyperfaas-Echo:latest").unwrap_err();
        assert!(
            matches!(&err, ImageRefError::Repository { problem: RepositoryProblem::Uppercase, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("lowercase"), "{err}");
        for (bad, what) in [
            ("HYPERFAAS-echo", "uppercase"),
            ("hyperfaas-echo-", "grammar"),
            ("hyperfaas-ec..ho", "grammar"),
            ("hyperfaas-ec._ho", "grammar"),
            ("hyperfaas-ec___ho", "grammar"),
            ("hyperfaas- echo", "grammar"),
            ("hyperfaas-échо", "grammar"),
            ("hyperfaas-x:a:b", "grammar"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(matches!(err, ImageRefError::Repository { .. }), "{bad} ({what}): {err:?}");
        }
        for not_allowed in ["echo:latest", "hyperfaas:latest", "hyperfaas-", "hyperfaas--echo", "nginx"] {
            let err = parse(not_allowed).unwrap_err();
            let ok = matches!(&err, ImageRefError::NotAllowed { .. } | ImageRefError::Repository { .. });
            assert!(ok, "{not_allowed}: {err:?}");
        }
        let err = parse("nginx:latest").unwrap_err();
        assert_eq!(
            err.to_string(),
            "image reference \"nginx:latest\": repository \"nginx\" is not one of hyperfaas-<name>"
        );
    }

    #[test]
    fn empty_and_too_long_are_refused() {
        assert_eq!(parse(""), Err(ImageRefError::Empty));
        let longest = format!("hyperfaas-{}", "a".repeat(MAX_REFERENCE_LEN - "hyperfaas-".len()));
        assert_eq!(longest.len(), 255);
        assert!(parse(&longest).is_ok());
        let too_long = format!("{longest}a");
        let err = parse(&too_long).unwrap_err();
        assert!(matches!(err, ImageRefError::TooLong { len: 256, .. }), "{err:?}");
        assert!(err.to_string().contains("256 bytes"), "{err}");
        assert!(err.to_string().len() < 200, "the message quotes only the start: {err}");
    }

    #[test]
    fn bad_tags_and_digests_are_named() {
        for tag in ["", ".x", "-x", "a b", "a+b", &"t".repeat(129)] {
            let reference = format!("hyperfaas-echo:{tag}");
            let err = parse(&reference).unwrap_err();
            assert!(matches!(&err, ImageRefError::Tag { tag: t, .. } if t == tag), "{reference}: {err:?}");
        }
        for digest in [
            "",
            "sha256:",
            "sha512:0123",
            &DIGEST[..DIGEST.len() - 1],
            &DIGEST.to_uppercase(),
            &format!("{DIGEST}0"),
            &format!("{DIGEST}@{DIGEST}"),
        ] {
            let reference = format!("hyperfaas-echo:latest@{digest}");
            let err = parse(&reference).unwrap_err();
            assert!(matches!(&err, ImageRefError::Digest { .. }), "{reference}: {err:?}");
            assert!(err.to_string().contains("sha256"), "{err}");
        }
    }

    #[test]
    fn other_prefixes_narrow_or_replace_the_default() {
        assert_eq!(ImageRef::parse_allowed("hyperfaas-echo", &["hyperfaas-e"]).unwrap().name(), "cho");
        let err = ImageRef::parse_allowed("hyperfaas-bfs", &["hyperfaas-e", "mine-"]).unwrap_err();
        assert!(err.to_string().ends_with("is not one of hyperfaas-e<name>, mine-<name>"), "{err}");
        assert!(ImageRef::parse_allowed("mine-x:1", &["hyperfaas-e", "mine-"]).is_ok());
        // A prefix never lets a path through.
        assert!(ImageRef::parse_allowed("mine.example.com/x", &["mine"]).is_err());
        assert!("hyperfaas-echo".parse::<ImageRef>().is_ok());
    }
}
