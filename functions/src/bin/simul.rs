//! The `simul` function: see [`functions::workload::simul`].

fn main() -> std::process::ExitCode {
    functions::sdk::run(functions::workload::simul::handle)
}
