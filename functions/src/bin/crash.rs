//! The `crash` function: see [`functions::workload::crash`].

fn main() -> std::process::ExitCode {
    functions::sdk::run(functions::workload::crash::handle)
}
