//! The `hello` function: see [`functions::workload::hello`].

fn main() -> std::process::ExitCode {
    functions::sdk::run(functions::workload::hello::handle)
}
