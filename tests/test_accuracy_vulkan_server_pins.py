"""llama-server's reservation on llama.cpp's Vulkan backend (validation/results-vulkan-server/,
b11434 on Mesa lavapipe), replayed without Vulkan: KV and output identical in every case; the
device compute within 20% wherever memfit claims its GPU margin (buffers under 1 GiB, no FA-off score
matrix above the 4 GiB maxBufferSize); the ROCm log's settings on b11434's Vulkan device."""

from __future__ import annotations

from validation.compare_vulkan_server import compare, section

MiB = 1 << 20


def test_vulkan_server_mode():
    import json
    from pathlib import Path

    results = [json.loads(p.read_text()) for p in sorted(Path(__file__).resolve().parent.parent.joinpath(
        "validation", "results-vulkan-server").glob("*.json"))]
    assert len(results) >= 7
    rows = compare(results)
    assert all(r["kv_same"] and r["out_same"] for r in rows)
    plain = [r for r in rows if not r["chunked"] and not r["cpu_kq"] and not r["set"].startswith("rocm")]
    assert len(plain) >= 100
    assert all(abs(r["mf"] - r["vk"]) / r["vk"] <= 0.20 for r in plain)
    assert sum(abs(r["mf"] - r["vk"]) / r["vk"] <= 0.10 for r in plain) >= 0.95 * len(plain)
    rocm = {r["set"]: r for r in rows if r["set"].startswith("rocm")}
    srv = rocm["rocm-log"]  # b11434's llama-server on a GPU backend: 438.5 MiB, not the log's 796
    assert abs(srv["mf"] - srv["vk"]) / srv["vk"] < 0.05 and abs(srv["mf_host"] - srv["host"]) < 1 * MiB
    assert section(results)[0] == "## Server mode on Vulkan"
