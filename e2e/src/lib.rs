//! Test-only crate: the end-to-end tests live in `tests/it`.
