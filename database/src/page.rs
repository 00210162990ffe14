//! Paging of `List`: page sizes and the cursor a page token encodes.
//!
//! Every `List` answer must stay far below the 16 MiB
//! ([`MAX_MESSAGE_SIZE`](hyperfake_core::defaults::MAX_MESSAGE_SIZE)) a client
//! decodes, however many functions are stored. A record is about 100 bytes
//! (a 36-byte UUID, an image tag, a config, a timestamp) and at most about 500
//! (a 128-byte id and a 255-byte tag), so the default page of 1000 is about
//! 100 kB, and the largest page, 10 000, at most about 5 MB.

/// Functions per page when the request asks for none (an older client
/// sending `ListRequest {}` gets this first page).
pub const DEFAULT_PAGE_SIZE: u32 = 1_000;
/// The most functions one answer holds; larger requests are lowered to it.
pub const MAX_PAGE_SIZE: u32 = 10_000;

/// The page size a request gets: 0 is the default, and at most [`MAX_PAGE_SIZE`].
pub(crate) fn page_size(requested: u32) -> u32 {
    match requested {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// The position after the last row of a page: rows are listed by creation
/// time, then by SQLite rowid (order of insertion), so a page token stays
/// valid when rows before or after it are deleted or added.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub created_at_ns: i64,
    pub rowid: i64,
}

impl Cursor {
    /// The page token for the page after this cursor (opaque to clients).
    pub fn token(self) -> String {
        format!("{}:{}", self.created_at_ns, self.rowid)
    }

    /// The cursor in a page token; `Ok(None)` for the empty token (the first page).
    pub fn from_token(token: &str) -> Result<Option<Cursor>, InvalidPageToken> {
        if token.is_empty() {
            return Ok(None);
        }
        let invalid = || InvalidPageToken(token.chars().take(64).collect());
        let (created, rowid) = token.split_once(':').ok_or_else(invalid)?;
        Ok(Some(Cursor {
            created_at_ns: created.parse().map_err(|_| invalid())?,
            rowid: rowid.parse().map_err(|_| invalid())?,
        }))
    }
}

/// A page token this database did not issue.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("page_token: {0:?} is not a token this database issued (pass next_page_token back unchanged)")]
pub struct InvalidPageToken(String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_default_and_are_capped() {
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(u32::MAX), MAX_PAGE_SIZE);
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        let cursor = Cursor { created_at_ns: 1_700_000_000_000_000_000, rowid: 42 };
        assert_eq!(Cursor::from_token(&cursor.token()), Ok(Some(cursor)));
        let negative = Cursor { created_at_ns: -5, rowid: -1 };
        assert_eq!(Cursor::from_token(&negative.token()), Ok(Some(negative)));
        assert_eq!(Cursor::from_token(""), Ok(None));
        for bad in ["x", "1", "1:", ":1", "1:2:3", "a:b"] {
            let err = Cursor::from_token(bad).unwrap_err();
            assert!(err.to_string().starts_with("page_token: "), "{err}");
        }
    }
}
