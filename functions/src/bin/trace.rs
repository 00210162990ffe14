//! The `trace` function: see [`functions::workload::trace`]. Reads its cgroup
//! limits and calibrates the busy loop once, at start.

use functions::workload::trace::TraceFunction;

fn main() -> std::process::ExitCode {
    let function = TraceFunction::start(std::path::Path::new("/sys/fs/cgroup"));
    functions::sdk::run(move |input| std::sync::Arc::clone(&function).handle(input))
}
