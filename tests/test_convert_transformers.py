"""Parity with transformers itself (skipped unless torch, transformers and tokenizers
are installed): random models built with transformers' own classes and saved with
save_pretrained, converted, run in pytactic. f32 logits within 1e-3 relative, the same
16 greedy tokens, and the same tokenization as the HF tokenizer. The work is done by
scripts/convert_parity_torch.py, which the GPU machine runs too."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

ROOT = Path(__file__).resolve().parent.parent


def _parity_module():
    spec = importlib.util.spec_from_file_location("convert_parity_torch", ROOT / "scripts" / "convert_parity_torch.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


parity = _parity_module()


@pytest.mark.slow
@pytest.mark.parametrize("arch", list(parity.ARCHS))
def test_transformers_parity(tmp_path, arch, refs):
    texts = [r["text"] for r in refs["tokenize"]]
    row = parity.run_one(arch, tmp_path, texts, outtypes=("f32",))
    f32 = row["f32"]
    assert f32["logits_rel_err"] < 1e-3
    assert f32["top1_agree"] == 1.0
    assert f32["greedy_equal"]
    tok = row["tokenize_equal"]
    if not tok.startswith("n/a"):
        assert tok == f"{len(texts)}/{len(texts)}"
