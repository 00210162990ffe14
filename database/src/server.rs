//! The `database.FunctionStore` gRPC service over a [`Store`].

use std::error::Error as _;
use std::future::Future;

use hyperfake_core::defaults::MAX_MESSAGE_SIZE;
use hyperfake_core::{FunctionConfigError, FunctionId, FunctionIdError};
use proto::auth::RequireToken;
use proto::database::function_store_server::{FunctionStore, FunctionStoreServer};
use proto::database::{CreateRequest, FunctionRecord, ListRequest, ListResponse};
use proto::{common, convert};
use tokio::net::TcpListener;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::function::Function;
use crate::page::{self, Cursor, InvalidPageToken};
use crate::store::{Store, StoreError};

/// Serves the function store (and `grpc.health.v1`) on `listener` until
/// `shutdown` completes, then finishes the calls in flight and returns.
pub async fn serve(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_with(listener, store, shutdown, RequireToken::default()).await
}

/// [`serve`], requiring the shared token of `auth` on every function store
/// call (UNAUTHENTICATED otherwise). Health checks stay open: they reveal
/// nothing, and probes should not need the secret.
pub async fn serve_with(
    listener: TcpListener,
    store: Store,
    shutdown: impl Future<Output = ()> + Send,
    auth: RequireToken,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<FunctionStoreServer<FunctionStoreService>>().await;
    let service = FunctionStoreServer::new(FunctionStoreService::new(store))
        .max_decoding_message_size(MAX_MESSAGE_SIZE);
    // Stream limit, keepalive and a deadline for every call: `proto::server`.
    proto::server::builder()
        .add_service(health_service)
        .add_service(InterceptedService::new(service, auth))
        .serve_with_incoming_shutdown(proto::net::incoming(listener), shutdown)
        .await
}

/// The gRPC service: validates requests and answers from the [`Store`].
#[derive(Clone, Debug)]
pub struct FunctionStoreService {
    store: Store,
}

/// Why a request failed, before it becomes a [`Status`] in [`status`].
#[derive(Debug, thiserror::Error)]
enum Error {
    #[error(transparent)]
    Invalid(#[from] FunctionConfigError),
    #[error(transparent)]
    FunctionId(#[from] FunctionIdError),
    #[error(transparent)]
    PageToken(#[from] InvalidPageToken),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl FunctionStoreService {
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    async fn create(&self, request: CreateRequest) -> Result<Function, Error> {
        let CreateRequest { image_tag, config } = request;
        let image_tag = convert::image_tag(image_tag.as_ref())?;
        let config = convert::function_config(config.as_ref())?;
        let function = self.store.create(image_tag, config).await?;
        info!(id = %function.id, image = %function.image_tag, "created function");
        Ok(function)
    }

    async fn list(&self, request: ListRequest) -> Result<ListResponse, Error> {
        let ListRequest { page_size, page_token } = request;
        let after = Cursor::from_token(&page_token)?;
        let page = self.store.list_page(after, page::page_size(page_size)).await?;
        Ok(ListResponse {
            functions: page.functions.iter().map(Into::into).collect(),
            next_page_token: page.next.map(Cursor::token).unwrap_or_default(),
            skipped: page.skipped,
        })
    }

    async fn delete(&self, id: common::FunctionId) -> Result<Function, Error> {
        let function = self.store.delete(&function_id(id)?).await?;
        info!(id = %function.id, image = %function.image_tag, "deleted function");
        Ok(function)
    }
}

#[tonic::async_trait]
impl FunctionStore for FunctionStoreService {
    async fn create(&self, request: Request<CreateRequest>) -> Result<Response<FunctionRecord>, Status> {
        respond(self.create(request.into_inner()).await)
    }

    async fn get(&self, request: Request<common::FunctionId>) -> Result<Response<FunctionRecord>, Status> {
        let function = async { Ok(self.store.get(&function_id(request.into_inner())?).await?) };
        respond(function.await)
    }

    async fn list(&self, request: Request<ListRequest>) -> Result<Response<ListResponse>, Status> {
        self.list(request.into_inner()).await.map(Response::new).map_err(status)
    }

    async fn delete(&self, request: Request<common::FunctionId>) -> Result<Response<FunctionRecord>, Status> {
        respond(self.delete(request.into_inner()).await)
    }
}

/// A requested id, bounded like every stored one ([`FunctionId::parse`]).
fn function_id(id: common::FunctionId) -> Result<FunctionId, Error> {
    Ok(FunctionId::parse(id.id)?)
}

fn respond(result: Result<Function, Error>) -> Result<Response<FunctionRecord>, Status> {
    result.map(|function| Response::new((&function).into())).map_err(status)
}

/// The one place a failure becomes a gRPC status.
fn status(error: Error) -> Status {
    match error {
        Error::Invalid(_) | Error::FunctionId(_) | Error::PageToken(_) => {
            Status::invalid_argument(error.to_string())
        }
        Error::Store(StoreError::NotFound(id)) => Status::not_found(format!("function {id} not found")),
        // Not retryable: the row is there but no longer validates (written by
        // an older build or edited by hand); asking again gives the same answer.
        Error::Store(StoreError::Corrupt(invalid)) => {
            warn!(error = %invalid, "a requested stored function does not validate");
            Status::data_loss(invalid.to_string())
        }
        Error::Store(error) => {
            let mut chain = error.to_string();
            let mut source = error.source();
            while let Some(cause) = source {
                chain = format!("{chain}: {cause}");
                source = cause.source();
            }
            warn!(error = %chain, "storage failure");
            Status::internal(format!("storage failure: {chain}"))
        }
    }
}
