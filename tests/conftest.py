"""Shared pytest fixtures. Each block says which tests it serves; add yours as a new block."""

from __future__ import annotations

from pathlib import Path

import pytest

from planner.testing import ggufgen

# --- GGUF reader (test_reader*.py) ----------------------------------------------------------------


@pytest.fixture(scope="session")
def arch_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One small but realistic GGUF per architecture family in ggufgen.ARCHS (sparse files)."""
    root = tmp_path_factory.mktemp("arch_models")
    return {arch: ggufgen.write_model(root / f"{arch}.gguf", arch)[0] for arch in ggufgen.ARCHS}


@pytest.fixture(scope="session")
def big_vocab_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Qwen2-7B-shaped Q4_K_M model with a 152k-token vocabulary (~5 MiB header, ~4.6 GiB
    sparse file)."""
    root = tmp_path_factory.mktemp("big_vocab")
    return ggufgen.write_model(root / "qwen2-7b-q4_k_m.gguf", "qwen2", ggufgen.QWEN2_7B_SHAPE)[0]


# --- fake Hugging Face Hub (test_hub.py, test_resolver.py, test_network_faults.py, end-to-end
# tests of plan/estimate/inspect against Hub references) ----------------------------------------


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A local Hub + CDN (planner/testing/fakehub.py) with HF_ENDPOINT pointing at it, a fresh memfit cache
    and HF home under tmp_path, no token, fast retries. Typical use:

        files = fakehub.model_repo_files(tmp_path / "m", "Qwen3-8B", ["Q4_K_M", "Q8_0"])
        fake_hub.add_repo("Qwen/Qwen3-8B-GGUF", files)
        model = resolve("Qwen/Qwen3-8B-GGUF:Q4_K_M")
        assert fake_hub.request_count() == ...

    Gated/private repos: `fake_hub.add_repo(..., gated=True)`, then `fake_hub.login(token, repo)`
    (grants access and sets HF_TOKEN for this test). Faults: `fake_hub.add_fault(...)`.
    """
    from huggingface_hub import constants
    from huggingface_hub.utils import close_session

    from planner.testing.fakehub import FakeHub

    hub = FakeHub()
    hub.setenv = monkeypatch.setenv  # type: ignore[method-assign]
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf_home"))
    monkeypatch.setenv("MEMFIT_CACHE_DIR", str(tmp_path / "memfit_cache"))
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE",
                "HF_HUB_DISABLE_IMPLICIT_TOKEN", "MEMFIT_REF_TTL"):
        monkeypatch.delenv(var, raising=False)
    # huggingface-hub read these at import time: point them at the test's own home/endpoint
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "hf_home" / "stored_tokens"))
    monkeypatch.setenv("MEMFIT_HTTP_TIMEOUT", "10")
    monkeypatch.setenv("MEMFIT_HTTP_RETRIES", "3")
    monkeypatch.setenv("MEMFIT_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("MEMFIT_HTTP_MAX_WAIT", "0.5")
    try:
        from planner import hub as hub_module

        hub_module.STATS.reset()
    except ImportError:
        pass
    # a fresh connection pool per test, as a fresh memfit process has: no kept-alive connection
    # from an earlier test's fake (or its faults) is reused by this one
    close_session()
    yield hub
    hub.close()


@pytest.fixture(autouse=True)
def _memfit_cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes memfit's header cache into the real home directory (added by the Hub
    helper; fake_hub sets its own per-test cache on top)."""
    monkeypatch.setenv("MEMFIT_CACHE_DIR", str(tmp_path_factory.mktemp("memfit_cache")))


# --- Ollama and LM Studio (test_ollama.py, test_lmstudio.py) ---------------------------------------


@pytest.fixture(autouse=True)
def _no_app_stores(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads this machine's Ollama store or LM Studio folder, or the real Ollama registry
    (a closed port: a test that forgot the fake registry fails at once, without network)."""
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path_factory.mktemp("ollama_store")))
    monkeypatch.setenv("MEMFIT_LMSTUDIO_MODELS", str(tmp_path_factory.mktemp("lmstudio_models")))
    monkeypatch.setenv("MEMFIT_OLLAMA_REGISTRY", "http://127.0.0.1:9")


@pytest.fixture
def fake_registry(monkeypatch: pytest.MonkeyPatch):
    """A local Ollama registry + blob store (planner/testing/fakeregistry.py) with MEMFIT_OLLAMA_REGISTRY
    pointing at it and fast retries. Use `fake_registry.add_model("qwen3:32b", fakeregistry.build_model(gguf))`."""
    from huggingface_hub.utils import close_session

    from planner.testing.fakeregistry import FakeRegistry

    reg = FakeRegistry()
    monkeypatch.setenv("MEMFIT_OLLAMA_REGISTRY", reg.url)
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "MEMFIT_REF_TTL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", False)
    monkeypatch.setenv("MEMFIT_HTTP_TIMEOUT", "10")
    monkeypatch.setenv("MEMFIT_HTTP_RETRIES", "3")
    monkeypatch.setenv("MEMFIT_HTTP_BACKOFF", "0.01")
    monkeypatch.setenv("MEMFIT_HTTP_MAX_WAIT", "0.5")
    close_session()  # a fresh connection pool per test (see fake_hub)
    yield reg
    reg.close()


# --- terminal width (issue 14: every command's text fits COLUMNS; tests/test_terminal_width.py) ----


@pytest.fixture(autouse=True)
def _columns_80(monkeypatch: pytest.MonkeyPatch) -> None:
    """Text renders at 80 columns in every test, as it does when stdout is not a terminal, whatever
    COLUMNS the shell running pytest exports; a test that needs another width sets COLUMNS itself."""
    monkeypatch.setenv("COLUMNS", "80")
