//! The `bfs` function: see [`functions::workload::bfs`].

fn main() -> std::process::ExitCode {
    functions::sdk::run(functions::workload::bfs::handle)
}
