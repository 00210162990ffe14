//! Compiles `proto/**/*.proto` with protox (a pure-Rust protobuf compiler), so no
//! `protoc` binary has to be installed or downloaded on a fresh machine.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "common/common.proto",
        "function/function.proto",
        "controller/controller.proto",
        "leaf/leaf.proto",
        "database/database.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure().compile_fds(descriptors)?;
    Ok(())
}
