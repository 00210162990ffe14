//! hyperfake's function metadata store: which functions exist, their image and
//! their resource configuration.
//!
//! - [`Store`]: the functions in a SQLite file.
//! - [`serve`]: the `database.FunctionStore` gRPC service over a [`Store`].
//! - [`DatabaseClient`]: the one client worker and leaf use to read it.
//! - `List` is paged ([`DEFAULT_PAGE_SIZE`], [`MAX_PAGE_SIZE`]); the client
//!   reads every page, and rows that no longer validate are skipped and logged.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use database::{DatabaseClient, Store};
//! use hyperfake_core::{Bytes, FunctionConfig, ImageTag};
//!
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path().join("functions.db"))?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let address = listener.local_addr()?.to_string();
//! tokio::spawn(database::serve(listener, store, std::future::pending()));
//!
//! let client = DatabaseClient::connect(&address)?;
//! let config = FunctionConfig { memory: Bytes::mib(256), cpu: None, idle_timeout: None, max_concurrency: None };
//! let echo = client.create(&ImageTag::from("hyperfaas-echo:latest"), &config).await?;
//! assert_eq!(client.get(&echo.id).await?, echo);
//! assert_eq!(client.list().await?, vec![echo]);
//! # Ok(())
//! # }
//! ```

mod client;
mod function;
mod page;
mod server;
mod store;

pub use client::{ClientError, DatabaseClient, Listing};
pub use function::{Function, InvalidRecord};
pub use page::{Cursor, DEFAULT_PAGE_SIZE, InvalidPageToken, MAX_PAGE_SIZE};
pub use server::{FunctionStoreService, serve, serve_with};
pub use store::{Page, Store, StoreError};
