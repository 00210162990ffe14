//! The `sleep` function: see [`functions::workload::sleep`].

fn main() -> std::process::ExitCode {
    functions::sdk::run(functions::workload::sleep::handle)
}
