//! The `echo` function: see [`functions::workload::echo`].

fn main() -> std::process::ExitCode {
    functions::sdk::run(functions::workload::echo::handle)
}
