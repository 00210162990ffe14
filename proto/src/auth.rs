//! Optional shared-token authentication for every hyperfake service.
//!
//! When the services run on one host and the load generator and collector on
//! another, a shared token keeps strangers on the network from starting
//! containers. Clients add `authorization: Bearer <token>` to every request
//! with [`BearerToken`]; servers check it with [`RequireToken`] and refuse with
//! `UNAUTHENTICATED`, naming whether the token was missing, malformed or wrong.
//! Both are no-ops without a token, so callers need a single code path.
//!
//! Every binary that takes `--token` also takes `--token-file PATH` (env
//! [`TOKEN_FILE_ENV`]), read by [`Token::from_file`]: a token on the command
//! line shows in `ps` to every user of the host, a file does not. The file
//! must be readable by its owner only (mode 0600 or 0400, like an SSH key);
//! one trailing newline is ignored. [`Token::from_flags`] is the one place the
//! two flags are turned into a token.
//!
//! ```
//! use proto::auth::{BearerToken, RequireToken};
//! use tonic::service::Interceptor;
//!
//! let mut client = BearerToken::new(Some("s3cret")).unwrap();
//! let mut server = RequireToken::new(Some("s3cret")).unwrap();
//! let request = client.call(tonic::Request::new(())).unwrap();
//! assert!(server.call(request).is_ok());
//! let refused = server.call(tonic::Request::new(())).unwrap_err();
//! assert_eq!(refused.code(), tonic::Code::Unauthenticated);
//! ```

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tonic::metadata::{AsciiMetadataValue, MetadataMap};
use tonic::service::interceptor::InterceptedService;
use tonic::service::{Interceptor, InterceptorLayer};
use tonic::transport::Channel;
use tonic::{Request, Status};

/// A channel whose requests carry the shared token (if any): the transport of
/// every hyperfake client, e.g. `LeafClient<AuthChannel>`.
pub type AuthChannel = InterceptedService<Channel, BearerToken>;

/// The request header carrying the token.
pub const AUTHORIZATION: &str = "authorization";
/// The scheme in front of the token in [`AUTHORIZATION`].
const SCHEME: &str = "Bearer ";
/// The environment variable `--token-file` reads (`HYPERFAKE_TOKEN` holds the
/// token itself; give one of the two).
pub const TOKEN_FILE_ENV: &str = "HYPERFAKE_TOKEN_FILE";
/// The largest token file read: a token is a line, not a document.
const MAX_TOKEN_FILE_BYTES: u64 = 4096;

/// A token that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token is empty (unset the flag or `HYPERFAKE_TOKEN` to run without one).
    #[error("the token is empty: unset --token / HYPERFAKE_TOKEN to run without authentication")]
    Empty,
    /// The token cannot travel in a header.
    #[error("the token must be printable ASCII without spaces")]
    NotPrintable,
    /// Both a token and a token file were given.
    #[error("give either --token (HYPERFAKE_TOKEN) or --token-file (HYPERFAKE_TOKEN_FILE), not both")]
    TokenAndFile,
    /// The token file cannot be read.
    #[error("cannot read the token file {}: {reason}", path.display())]
    FileUnreadable { path: PathBuf, reason: String },
    /// The token file is empty (or holds only a newline).
    #[error("the token file {} is empty", path.display())]
    FileEmpty { path: PathBuf },
    /// The token file is larger than a token can be.
    #[error("the token file {} is larger than {MAX_TOKEN_FILE_BYTES} bytes: is it the right file?", path.display())]
    FileTooLarge { path: PathBuf },
    /// The token file is not printable ASCII on one line.
    #[error("the token file {} must hold one line of printable ASCII without spaces", path.display())]
    FileNotPrintable { path: PathBuf },
    /// Users other than the owner may read or write the token file.
    #[error(
        "the token file {} has mode {mode:03o}: group and others must have no access; run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    FileTooOpen { path: PathBuf, mode: u32 },
}

// === impl Token ===

/// A shared token that can travel in a header. Its `Debug` output never shows
/// the secret, so settings that hold one can be logged.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(Arc<str>);

impl Token {
    pub fn new(token: &str) -> Result<Token, TokenError> {
        if token.is_empty() {
            return Err(TokenError::Empty);
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(TokenError::NotPrintable);
        }
        Ok(Token(Arc::from(token)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads a token from `path`: one line of printable ASCII (a single
    /// trailing `\n` or `\r\n` is ignored). Refuses, naming the file, one
    /// that is missing, empty, larger than 4 KiB, or (on Unix) open to the
    /// group or others (any of mode `077`): the token would be as exposed as
    /// on the command line.
    pub fn from_file(path: &Path) -> Result<Token, TokenError> {
        let unreadable =
            |e: std::io::Error| TokenError::FileUnreadable { path: path.into(), reason: e.to_string() };
        let metadata = std::fs::metadata(path).map_err(unreadable)?;
        if !metadata.is_file() {
            return Err(TokenError::FileUnreadable {
                path: path.into(),
                reason: "not a regular file".into(),
            });
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(TokenError::FileTooOpen { path: path.into(), mode });
            }
        }
        if metadata.len() > MAX_TOKEN_FILE_BYTES {
            return Err(TokenError::FileTooLarge { path: path.into() });
        }
        let bytes = std::fs::read(path).map_err(unreadable)?;
        let line = bytes.strip_suffix(b"\n").map_or(&bytes[..], |b| b.strip_suffix(b"\r").unwrap_or(b));
        if line.is_empty() {
            return Err(TokenError::FileEmpty { path: path.into() });
        }
        let text =
            std::str::from_utf8(line).map_err(|_| TokenError::FileNotPrintable { path: path.into() })?;
        Token::new(text).map_err(|_| TokenError::FileNotPrintable { path: path.into() })
    }

    /// The token a binary runs with, from its `--token` and `--token-file`
    /// flags (or their environment variables): at most one may be given.
    /// `None`: no authentication.
    pub fn from_flags(token: Option<&str>, file: Option<&Path>) -> Result<Option<Token>, TokenError> {
        match (token, file) {
            (Some(_), Some(_)) => Err(TokenError::TokenAndFile),
            (Some(token), None) => Token::new(token).map(Some),
            (None, Some(file)) => Token::from_file(file).map(Some),
            (None, None) => Ok(None),
        }
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl std::str::FromStr for Token {
    type Err = TokenError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Token::new(s)
    }
}

// === impl BearerToken ===

/// Client side: adds `authorization: Bearer <token>` to every request. Without
/// a token it passes requests through unchanged.
///
/// Use with a generated client: `ControllerClient::with_interceptor(channel, token)`.
#[derive(Clone, Default)]
pub struct BearerToken {
    header: Option<AsciiMetadataValue>,
}

impl BearerToken {
    pub fn new(token: Option<&str>) -> Result<Self, TokenError> {
        Ok(Self::from_token(token.map(Token::new).transpose()?.as_ref()))
    }

    /// For an already validated token.
    pub fn from_token(token: Option<&Token>) -> Self {
        let header = token.map(|token| {
            AsciiMetadataValue::try_from(format!("{SCHEME}{}", token.as_str()))
                .expect("a validated token is printable ASCII, so it is a valid header value")
        });
        BearerToken { header }
    }

    /// Whether requests carry a token.
    pub fn is_set(&self) -> bool {
        self.header.is_some()
    }
}

impl fmt::Debug for BearerToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the secret.
        f.debug_struct("BearerToken").field("set", &self.is_set()).finish()
    }
}

impl Interceptor for BearerToken {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(header) = &self.header {
            request.metadata_mut().insert(AUTHORIZATION, header.clone());
        }
        Ok(request)
    }
}

// === impl RequireToken ===

/// Server side: refuses every request whose `authorization` header does not
/// carry the expected token, with `UNAUTHENTICATED`. Without a token it
/// accepts everything.
///
/// Apply to a whole server (every service, health included):
/// `Server::builder().layer(RequireToken::new(token)?.layer())`.
#[derive(Clone, Default)]
pub struct RequireToken {
    expected: Option<Arc<str>>,
}

impl RequireToken {
    pub fn new(token: Option<&str>) -> Result<Self, TokenError> {
        Ok(Self::from_token(token.map(Token::new).transpose()?.as_ref()))
    }

    /// For an already validated token.
    pub fn from_token(token: Option<&Token>) -> Self {
        RequireToken { expected: token.map(|t| Arc::clone(&t.0)) }
    }

    /// Whether requests must carry a token.
    pub fn is_required(&self) -> bool {
        self.expected.is_some()
    }

    /// This check as a tower layer for `tonic::transport::Server::builder().layer(..)`.
    pub fn layer(self) -> InterceptorLayer<Self> {
        InterceptorLayer::new(self)
    }

    /// Checks the request metadata; the error names what is wrong.
    pub fn check(&self, metadata: &MetadataMap) -> Result<(), Status> {
        let Some(expected) = &self.expected else { return Ok(()) };
        let Some(header) = metadata.get(AUTHORIZATION) else {
            return Err(Status::unauthenticated(
                "missing token: this server requires `authorization: Bearer <token>` \
                 (give the client --token-file or --token, or set HYPERFAKE_TOKEN_FILE or HYPERFAKE_TOKEN)",
            ));
        };
        let given = header.to_str().ok().and_then(|h| h.strip_prefix(SCHEME));
        match given {
            None => Err(Status::unauthenticated("malformed authorization header: expected `Bearer <token>`")),
            Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
            Some(_) => Err(Status::unauthenticated(
                "wrong token: the client's token does not match this server's --token / HYPERFAKE_TOKEN",
            )),
        }
    }
}

impl fmt::Debug for RequireToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RequireToken").field("required", &self.is_required()).finish()
    }
}

impl Interceptor for RequireToken {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        self.check(request.metadata())?;
        Ok(request)
    }
}

/// Compares without an early exit, so response timing does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request_with(header: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(h) = header {
            request.metadata_mut().insert(AUTHORIZATION, h.parse().unwrap());
        }
        request
    }

    #[test]
    fn the_server_names_what_is_wrong() {
        let mut server = RequireToken::new(Some("abc")).unwrap();
        let missing = server.call(request_with(None)).unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert!(missing.message().starts_with("missing token"), "{}", missing.message());
        let wrong = server.call(request_with(Some("Bearer abd"))).unwrap_err();
        assert!(wrong.message().starts_with("wrong token"), "{}", wrong.message());
        let malformed = server.call(request_with(Some("Basic abc"))).unwrap_err();
        assert!(malformed.message().starts_with("malformed"), "{}", malformed.message());
        assert!(server.call(request_with(Some("Bearer abc"))).is_ok());
    }

    #[test]
    fn without_a_token_both_sides_pass_everything() {
        let mut client = BearerToken::new(None).unwrap();
        let request = client.call(Request::new(())).unwrap();
        assert!(request.metadata().get(AUTHORIZATION).is_none());
        assert!(RequireToken::default().call(request).is_ok());
    }

    #[test]
    fn unusable_tokens_are_refused() {
        assert_eq!(BearerToken::new(Some("")).unwrap_err(), TokenError::Empty);
        assert_eq!(RequireToken::new(Some("a b")).unwrap_err(), TokenError::NotPrintable);
        assert_eq!(RequireToken::new(Some("ü")).unwrap_err(), TokenError::NotPrintable);
    }

    #[test]
    fn the_flags_give_at_most_one_token() {
        assert_eq!(Token::from_flags(None, None), Ok(None));
        assert_eq!(Token::from_flags(Some("t"), None).unwrap().unwrap().as_str(), "t");
        let both = Token::from_flags(Some("t"), Some(Path::new("/t"))).unwrap_err();
        assert_eq!(both, TokenError::TokenAndFile);
    }

    #[test]
    fn a_missing_token_file_is_named() {
        let path = Path::new("/nonexistent/hyperfake/token");
        let err = Token::from_flags(None, Some(path)).unwrap_err();
        assert!(matches!(&err, TokenError::FileUnreadable { path: p, .. } if p == path), "{err:?}");
        assert!(err.to_string().contains("/nonexistent/hyperfake/token"), "{err}");
    }

    #[test]
    fn debug_never_prints_the_secret() {
        let text = format!(
            "{:?} {:?} {:?}",
            BearerToken::new(Some("s3cret")),
            RequireToken::new(Some("s3cret")),
            Token::new("s3cret")
        );
        assert!(!text.contains("s3cret"), "{text}");
    }
}
