//! The `thumbnailer` function: see [`functions::workload::thumbnailer`].

fn main() -> std::process::ExitCode {
    functions::sdk::run(functions::workload::thumbnailer::handle)
}
