//! [`DatabaseClient`]: the client of the function store that worker and leaf use.

use std::future::Future;
use std::time::Duration;

use hyperfake_core::defaults::{DATABASE_TIMEOUT, MAX_MESSAGE_SIZE};
use hyperfake_core::{FunctionConfig, FunctionId, ImageTag};
use proto::auth::{AuthChannel, BearerToken, TokenError};
use proto::database::function_store_client::FunctionStoreClient;
use proto::database::{CreateRequest, FunctionRecord, ListRequest};
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};
use tracing::warn;

use crate::function::{Function, InvalidRecord};

/// Why a database call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{address:?} is not a valid database address")]
    InvalidAddress {
        address: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("function {0} not found")]
    NotFound(FunctionId),
    /// The database refused the request; the message names the field.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// Nothing answers at `address` (refused, unreachable, or shutting down).
    #[error("database at {address} is unavailable")]
    Unavailable {
        address: String,
        #[source]
        source: Status,
    },
    #[error("database at {address} did not answer within {after:?}")]
    Timeout { address: String, after: Duration },
    /// The database answered with a record this client cannot validate.
    #[error("database at {address} sent an invalid record")]
    Corrupt {
        address: String,
        #[source]
        source: InvalidRecord,
    },
    /// The database holds the requested function, but its stored row no
    /// longer validates (DATA_LOSS); asking again gives the same answer.
    #[error("database at {address} holds function {id}, but its stored record does not validate: {}", .source.message())]
    StoredInvalid {
        address: String,
        id: FunctionId,
        #[source]
        source: Status,
    },
    /// Any other failure the database reported (storage errors are INTERNAL).
    #[error("database at {address} failed")]
    Server {
        address: String,
        #[source]
        source: Status,
    },
}

impl ClientError {
    pub fn is_not_found(&self) -> bool {
        matches!(self, ClientError::NotFound(_))
    }

    /// The database could not be reached in time ([`Unavailable`](Self::Unavailable)
    /// or [`Timeout`](Self::Timeout)); the same call may succeed later.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, ClientError::Unavailable { .. } | ClientError::Timeout { .. })
    }
}

/// The generated client, sending the shared token if one is set.
type Inner = FunctionStoreClient<AuthChannel>;

/// A client of the function store. Cheap to clone; clones share one connection.
#[derive(Clone, Debug)]
pub struct DatabaseClient {
    inner: Inner,
    channel: Channel,
    address: String,
    timeout: Duration,
    /// `ListRequest.page_size`; 0 is the database's default.
    page_size: u32,
}

/// What [`DatabaseClient::listing`] read.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Listing {
    /// The functions that validate, oldest first.
    pub functions: Vec<Function>,
    /// Stored functions left out because they do not validate.
    pub skipped: u64,
}

impl DatabaseClient {
    /// A client for the database at `address` (`host:port` or `http://host:port`).
    ///
    /// Nothing is dialled here: the first call connects, and fails with
    /// [`ClientError::Unavailable`] if nothing listens. A lost connection is
    /// re-established by the next call.
    pub fn connect(address: &str) -> Result<Self, ClientError> {
        let endpoint = proto::endpoint(address)
            .map_err(|source| ClientError::InvalidAddress { address: address.to_string(), source })?;
        let channel = endpoint.connect_lazy();
        let inner = Self::inner(channel.clone(), BearerToken::default());
        Ok(Self { inner, channel, address: address.to_string(), timeout: DATABASE_TIMEOUT, page_size: 0 })
    }

    /// Sends `authorization: Bearer <token>` with every call, for a database
    /// started with `--token`. By default, no token is sent.
    pub fn with_token(self, token: Option<&str>) -> Result<Self, TokenError> {
        Ok(self.with_bearer(BearerToken::new(token)?))
    }

    /// [`with_token`](Self::with_token) for an already validated token.
    pub fn with_bearer(mut self, token: BearerToken) -> Self {
        self.inner = Self::inner(self.channel.clone(), token);
        self
    }

    fn inner(channel: Channel, token: BearerToken) -> Inner {
        FunctionStoreClient::with_interceptor(channel, token).max_decoding_message_size(MAX_MESSAGE_SIZE)
    }

    /// Asks for pages of at most `size` functions in [`listing`](Self::listing);
    /// 0 (the default) leaves it to the database
    /// ([`DEFAULT_PAGE_SIZE`](crate::DEFAULT_PAGE_SIZE)).
    pub fn with_page_size(mut self, size: u32) -> Self {
        self.page_size = size;
        self
    }

    /// Sets how long one call may take, connecting included. By default, this
    /// is [`DATABASE_TIMEOUT`].
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn address(&self) -> &str {
        &self.address
    }

    /// Registers a function; the database validates the request and assigns the id.
    pub async fn create(
        &self,
        image_tag: &ImageTag,
        config: &FunctionConfig,
    ) -> Result<Function, ClientError> {
        let request = CreateRequest { image_tag: Some(image_tag.into()), config: Some(config.into()) };
        let record = self.call(None, |mut c, r| async move { c.create(r).await }, request).await?;
        self.function(record)
    }

    pub async fn get(&self, id: &FunctionId) -> Result<Function, ClientError> {
        let record = self.call(Some(id), |mut c, r| async move { c.get(r).await }, id.into()).await?;
        self.function(record)
    }

    /// All functions that validate, oldest first (see [`listing`](Self::listing)).
    pub async fn list(&self) -> Result<Vec<Function>, ClientError> {
        Ok(self.listing().await?.functions)
    }

    /// All functions, oldest first, read page by page (each page a call under
    /// the timeout). A record that does not validate, here or already in the
    /// database, is left out, logged and counted in [`Listing::skipped`]: one
    /// bad row must not keep a leaf from starting.
    pub async fn listing(&self) -> Result<Listing, ClientError> {
        let mut listing = Listing::default();
        let mut token = String::new();
        loop {
            let request = ListRequest { page_size: self.page_size, page_token: token.clone() };
            let page = self.call(None, |mut c, r| async move { c.list(r).await }, request).await?;
            if page.skipped > 0 {
                warn!(
                    address = %self.address,
                    skipped = page.skipped,
                    "the database left out stored functions that do not validate (its log names them)"
                );
                listing.skipped += u64::from(page.skipped);
            }
            for record in page.functions {
                match Function::try_from(record) {
                    Ok(function) => listing.functions.push(function),
                    Err(error) => {
                        warn!(address = %self.address, %error, "skipping an invalid function record");
                        listing.skipped += 1;
                    }
                }
            }
            if page.next_page_token.is_empty() {
                return Ok(listing);
            }
            if page.next_page_token == token {
                let status = Status::internal(format!("List repeated page token {token:?}"));
                return Err(ClientError::Server { address: self.address.clone(), source: status });
            }
            token = page.next_page_token;
        }
    }

    /// Removes a function and returns what was stored.
    pub async fn delete(&self, id: &FunctionId) -> Result<Function, ClientError> {
        let record = self.call(Some(id), |mut c, r| async move { c.delete(r).await }, id.into()).await?;
        self.function(record)
    }

    /// Runs one RPC under the timeout. `id` is what NOT_FOUND refers to.
    async fn call<Req, Res, F, Fut>(
        &self,
        id: Option<&FunctionId>,
        rpc: F,
        message: Req,
    ) -> Result<Res, ClientError>
    where
        F: FnOnce(Inner, Request<Req>) -> Fut,
        Fut: Future<Output = Result<Response<Res>, Status>>,
    {
        // Not `Request::set_timeout`: tonic would race this timer with its own,
        // which fails as CANCELLED rather than as a timeout.
        match tokio::time::timeout(self.timeout, rpc(self.inner.clone(), Request::new(message))).await {
            Ok(Ok(response)) => Ok(response.into_inner()),
            Ok(Err(status)) => Err(self.error(status, id)),
            Err(_elapsed) => Err(self.timeout_error()),
        }
    }

    /// The one place a status from the database becomes a [`ClientError`].
    fn error(&self, status: Status, id: Option<&FunctionId>) -> ClientError {
        let address = self.address.clone();
        match (status.code(), id) {
            (Code::NotFound, Some(id)) => ClientError::NotFound(id.clone()),
            (Code::InvalidArgument, _) => ClientError::Invalid(status.message().to_string()),
            (Code::DataLoss, Some(id)) => {
                ClientError::StoredInvalid { address, id: id.clone(), source: status }
            }
            (Code::Unavailable, _) => ClientError::Unavailable { address, source: status },
            (Code::DeadlineExceeded, _) => self.timeout_error(),
            _ => ClientError::Server { address, source: status },
        }
    }

    fn timeout_error(&self) -> ClientError {
        ClientError::Timeout { address: self.address.clone(), after: self.timeout }
    }

    fn function(&self, record: FunctionRecord) -> Result<Function, ClientError> {
        Function::try_from(record)
            .map_err(|source| ClientError::Corrupt { address: self.address.clone(), source })
    }
}
