//! The wire contract: HyperFaaS's protobuf packages with their original field
//! numbers, plus hyperfake's additions (see the `.proto` files for which).
//!
//! Proto integers become the unit types of [`hyperfake_core`] here and nowhere
//! else: see [`convert`].

#![allow(unreachable_pub, missing_debug_implementations, clippy::all)]

pub mod common {
    tonic::include_proto!("common");
}
pub mod function {
    tonic::include_proto!("function");
}
pub mod controller {
    tonic::include_proto!("controller");
}
pub mod leaf {
    tonic::include_proto!("leaf");
}
pub mod database {
    tonic::include_proto!("database");
}

pub mod auth;
pub mod convert;
pub mod deadline;
