"""Writes the hand-made seeds of every fuzz target into ../corpus/<target>/
(files named seed-*; inputs the fuzzer found are named by their hash).
Sources: the repository's workload files (configs/*.yaml), one trained JSON
model (entries cut to a few quantiles), and small inputs in each target's
documented format. Run from anywhere: `python3 fuzz/seeds/make_seeds.py`."""

import base64
import json
import pathlib
import struct

from make_jpeg import jpeg

FUZZ = pathlib.Path(__file__).resolve().parent.parent
REPO = FUZZ.parent
CORPUS = FUZZ / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / f"seed-{name}").write_bytes(data)


def floats(*values):
    return b"".join(struct.pack("<f", v) for v in values)


# --- protobuf, just enough for the wire target ---
def varint(n):
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field(number, value):
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    if isinstance(value, str):
        value = value.encode()
    return varint(number << 3 | 2) + varint(len(value)) + value


def config(memory, period, quota, timeout, concurrency):
    return field(1, memory) + field(2, field(1, period) + field(2, quota)) + field(3, timeout) + field(4, concurrency)


def thin(quantiles, step=25):
    return quantiles[::step] + ([quantiles[-1]] if (len(quantiles) - 1) % step else [])


def small_entry(entry):
    e = dict(entry)
    for key in ("runtime_residual_quantiles", "cold_start_ns_quantiles"):
        if key in e:
            e[key] = thin(e[key])
    for key in ("runtime_spread", "overhead_spread"):
        if key in e:
            e[key] = [{"upto": r["upto"], "quantiles": thin(r["quantiles"])} for r in e[key][:2]]
    if "host_baseline" in e:
        e["host_baseline"] = {k: thin(v) for k, v in e["host_baseline"].items()}
    return e


def main():
    # workload_yaml: the repository's workloads, plus the forms they do not use.
    for f in sorted((REPO / "configs").glob("*.yaml")):
        write("workload_yaml", f.stem, f.read_bytes())
    write("workload_yaml", "patterns-list", """max_duration: 30s
generate_workload: true
seed: -3
patterns:
  - {name: p, image_tag: hyperfaas-bfs:latest, phase_count: {min: 1, max: 3}, constant_likelihood: 0.5,
     parameters: {start_rps: {min: 1, max: 5}, end_rps: {min: 0, max: 9}, step: {min: 1, max: 2}}, arrival: burst}
function_config:
  hyperfaas-bfs:latest: {memory: 256MB, timeout: 30s, max_concurrency: 2, copies: 3,
    features: [{name: graph_nodes, json: /Size}, {name: bytes, payload_bytes: true}]}
data_providers:
  hyperfaas-bfs:latest: {type: bfs_json, min_nodes: 10, max_nodes: 20}
""")
    write("workload_yaml", "variable-thumbnailer", """max_duration: 1m
timeout: 30
arrival: poisson
max_scheduled_calls: 500
workload:
  phases:
    - {type: variable, start_time: 2s, duration: 20s, start_rps: 9, end_rps: 1, step: -2, image_tag: hyperfaas-thumbnailer:latest}
function_config:
  hyperfaas-thumbnailer:latest: {memory: 1GB, cpu: {period: 100000, quota: 100000},
    features: [{name: pixels, product: [/width, /height]}, {name: image, base64_len: /image}]}
data_providers:
  hyperfaas-thumbnailer:latest: {type: thumbnailer_json, source_sizes: [64x48, 8X8], min_width: 1, max_width: 32, min_height: 2, max_height: 9, jpeg_quality: 50}
""")

    # model_json: entries of a trained linear model file, cut small; a HyperFake
    # file (no runtime_unit: milliseconds); rows after a NUL.
    run = sorted(p for p in (REPO / "models").iterdir() if (p / "linear.json").exists())[0]
    models = json.loads((run / "linear.json").read_text())
    rows = b"\0" + floats(512, 1, 1, 0.3, 2e9, 1000, -1, float("nan"), float("inf"), 1e30, 0, 7)
    for tag in ("hyperfaas-bfs:latest", "hyperfaas-echo:latest"):
        entry = small_entry(models[tag])
        write("model_json", tag.split(":")[0], json.dumps({tag: entry}).encode() + rows)
    hyperfake = {"hyperfaas-echo:latest": {"image_tag": "hyperfaas-echo:latest",
                 "runtime_coeffs": [0.001, 0.5, 0.2, 3.0, 1e-9, 2.0],
                 "cpu_coeffs": [0, 0, 0, 0.1, 0, 0.01], "ram_coeffs": [1, 0, 0, 0, 0, 1e7]}}
    write("model_json", "hyperfake", json.dumps(hyperfake).encode() + rows)

    # model_info: the same metadata in ModelInfo's form, a payload, numbers.
    bfs = small_entry(models["hyperfaas-bfs:latest"])
    info = {
        "image_tag": "hyperfaas-bfs:latest", "kind": "random-forest", "source_runtime_unit": "ns",
        "training_run": bfs.get("training_run"), "trained_at": bfs.get("trained_at"), "sample_count": 364,
        "payload_features": bfs["payload_features"], "payload_feature_defaults": bfs["payload_feature_defaults"],
        "output_count": 5, "input_ranges": bfs["input_ranges"], "output_ranges": bfs["output_ranges"],
        "runtime_residual_quantiles": bfs.get("runtime_residual_quantiles"),
        "runtime_spread": bfs.get("runtime_spread"), "overhead_spread": bfs.get("overhead_spread"),
        "cold_start_ns_quantiles": bfs.get("cold_start_ns_quantiles"), "host_baseline": bfs.get("host_baseline"),
    }
    numbers = floats(30, 2, 2, 0.4, 6e8, 1e6, 0.1, 3e7, 400, 2e5, 0.25, 0.9)
    write("model_info", "bfs", json.dumps(info).encode() + b'\0{"Size": 300, "Seed": 2}\0' + numbers)
    bare = {"image_tag": "hyperfaas-echo:latest", "kind": "external", "source_runtime_unit": "ms",
            "training_run": None, "trained_at": None, "sample_count": None, "payload_features": [],
            "payload_feature_defaults": [], "output_count": 3, "input_ranges": None, "output_ranges": None,
            "runtime_residual_quantiles": [], "runtime_spread": None, "overhead_spread": None,
            "cold_start_ns_quantiles": None, "host_baseline": None}
    write("model_info", "bare", json.dumps(bare).encode() + b"\0\0" + numbers)

    # wire: a kind byte, then the message.
    echo = field(1, "hyperfaas-echo:latest")
    write("wire", "create", b"\0" + field(1, echo) + field(2, config(128 << 20, 100000, 50000, 30, 4)))
    write("wire", "create-registered", b"\0" + field(3, field(1, "f-1")) + field(1, field(1, "")))
    write("wire", "record", b"\1" + field(1, field(1, "0b9c7c1e-4f1e-4d2a-9a53-1b2c3d4e5f60")) + field(2, echo)
          + field(3, config(64 << 20, 0, 0, 0, 0)) + field(4, 1_700_000_000_000_000_000))
    write("wire", "status", b"\2" + field(1, field(1, "i-1")) + field(3, 1) + field(5, field(1, "f-1"))
          + field(6, field(1, 1_700_000_000) + field(2, 999_999_999)) + field(7, "exit 137") + field(8, 137)
          + field(9, 1) + field(10, 412_000_000))
    for t in ("99m", "1H", "12345678n", "5S"):
        write("wire", f"timeout-{t}", b"\3" + t.encode())

    # image_ref: references, then NUL-separated prefixes.
    for i, r in enumerate(["hyperfaas-echo:latest", "hyperfaas-bfs", "hyperfaas-a.b_c-d:v1.2",
                           "hyperfaas-echo@sha256:" + "ab" * 32, "docker.io/library/ubuntu",
                           "hyperfaas-Echo:x", "myorg-fn:1\0myorg-\0hyperfaas-"]):
        write("image_ref", str(i), r)

    # function_config: structured (arbitrary); a few byte strings to start from.
    write("function_config", "zeros", bytes(40))
    write("function_config", "typical", struct.pack("<qBqqqq", 128 << 20, 1, 100000, 50000, 30, 4))

    # units: sizes and durations as written in configs.
    for i, t in enumerate(["256MB", "2GB", "512KB", "1024", "1.5GiB", "1h30m", "1.5s", "250ms", "0", "10us",
                           "5m", ".5s", "999999999999h", "1h0m1s", "3µs"]):
        write("units", str(i), t)

    # leaf_config: the file's keys.
    write("leaf_config", "leaf", """address: 0.0.0.0:50050
database: 127.0.0.1:50049
workers: [127.0.0.1:50051, 127.0.0.1:50052]
cold_start_timeout: 30s
target_concurrency: 16
max_instances: 8
max_pending_calls: 1024
call_retries: 2
scale_down_interval: 250ms
reconcile_interval: 2s
reconnect_min: 100ms
reconnect_max: 5s
connect_timeout: 1s
database_wait: 30s
token: s3cret-token
""")
    write("leaf_config", "balancer", "children: [leaf-a:50050, leaf-b:50050]\nstate_interval: 1m 30s\n")

    # payload_features: declarations, NUL, a payload.
    decl = json.dumps([{"name": "graph_nodes", "json": "/size"},
                       {"name": "target_pixels", "product": ["/width", "/height"]},
                       {"name": "image_bytes", "base64_len": "/image"},
                       {"name": "request_bytes", "payload_bytes": True}])
    write("payload_features", "all", decl + '\0{"size": 1000, "width": 32, "height": 10, "image": "AAAA"}')
    write("payload_features", "nested", '[{"name":"n","json":"/graph/nodes/1"}]\0{"graph": {"nodes": [1, 22.5]}}')

    # bfs: requests as the load generator sends them.
    for i, r in enumerate(['{"Size": 100, "Seed": 7}', '{"size": 11}', '{"Size": 1, "Seed": -1}',
                           '{"Size": 1000001}']):
        write("bfs", str(i), r)

    # thumbnailer: width-1, height-1, JPEG; and the JSON request form.
    picture = jpeg(32, 16, [40, 80, 120, 160, 200, 240, 128, 16])
    write("thumbnailer", "raw", bytes([7, 3]) + picture)
    write("thumbnailer", "json", json.dumps({"image": base64.b64encode(picture).decode(), "width": 5, "height": 40}))


if __name__ == "__main__":
    main()
