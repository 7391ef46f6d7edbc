"""The tokenizer on the real Gemma 3 vocabulary (SentencePiece-style, FORMATS §4.2-4.3),
held to llama.cpp's own tokenization in tests/data/tokenize.json; the C ABI's edges;
the errors a bad vocabulary gives; end-of-generation tokens; BPE clean-up; and the
split rules of every supported BPE pre-tokenizer against the `regex` module.
(Byte-level BPE against tiktoken is in test_bpe_tiktoken.py.)"""

import gguf
import pytest

from pytactic._native import check, ffi, lib
from native_vocab import NativeVocab
from pytactic.errors import InvalidArgumentError, InvalidModelError, UnsupportedModelError


def load_error(path):
    """The typed error loading `path` (vocab_only) raises, or None."""
    try:
        NativeVocab(path)
    except Exception as e:  # noqa: BLE001 - the type is what is checked
        return e
    return None


@pytest.fixture(scope="module")
def gemma(gemma_path):
    return NativeVocab(gemma_path)


def test_tokenize_matches_llama_cpp(gemma, refs):
    cases = refs["tokenize"]
    assert len(cases) >= 20
    for case in cases:
        text = case["text"]
        assert gemma.tokenize(text, add_special=False) == case["ids_no_bos"], repr(text)
        assert gemma.tokenize(text, add_special=True) == case["ids_with_bos"], repr(text)


def test_detokenize_round_trips(gemma, refs):
    for case in refs["tokenize"]:
        assert gemma.detokenize(case["ids_no_bos"]) == case["text"]
        # BOS is a control token: it renders as nothing unless special output is asked for.
        assert gemma.detokenize(case["ids_with_bos"]) == case["text"]
        assert gemma.detokenize(case["ids_with_bos"], special=True) == "<bos>" + case["text"]


def test_special_flags_and_ids(gemma):
    m = gemma.model
    assert lib.tactic_token_bos(m) == 2
    assert lib.tactic_token_eos(m) == 1
    assert lib.tactic_vocab_add_bos(m) == 1
    assert lib.tactic_vocab_add_eos(m) == 0
    eog = [t for t in range(300) if lib.tactic_token_is_eog(m, t)]
    assert eog == [1, 106]  # <eos> and <end_of_turn>
    assert lib.tactic_token_is_eog(m, -1) == 0
    assert lib.tactic_token_is_eog(m, 10**9) == 0


def test_parse_special_turns_control_text_into_ids(gemma):
    text = "<start_of_turn>user\nHello<end_of_turn>\n"
    ids = gemma.tokenize(text, add_special=True, parse_special=True)
    assert ids[:2] == [2, 105]  # <bos> <start_of_turn>
    assert 106 in ids
    assert gemma.piece(105, special=True) == b"<start_of_turn>"
    assert gemma.piece(105, special=False) == b""
    assert gemma.detokenize(ids[1:], special=True) == text
    # Without parse_special the same text is plain characters.
    plain = gemma.tokenize(text, parse_special=False)
    assert 105 not in plain and 106 not in plain
    assert gemma.detokenize(plain) == text


def test_user_defined_tokens_always_split(gemma):
    # Runs of spaces, newlines and tabs and HTML-like tags are user-defined tokens:
    # pre-split even when special tokens are not parsed (FORMATS §4.3).
    assert gemma.tokenize("  two") == [138, 13498]
    ids = gemma.tokenize("a\n\n\nb<table>")
    table = gemma.tokenize("<table>")
    assert len(table) == 1 and gemma.piece(table[0]) == b"<table>"
    assert ids[-1] == table[0]
    assert gemma.piece(ids[1]) == b"\n\n\n"


def test_pieces_of_multibyte_characters(gemma):
    # A character without its own token falls back to one <0xHH> token per byte; the
    # pieces are those raw bytes, which only join into UTF-8 together.
    text = "\U0001d11e"  # MUSICAL SYMBOL G CLEF
    ids = gemma.tokenize(text)
    pieces = [gemma.piece(t) for t in ids]
    assert b"".join(pieces) == text.encode("utf-8")
    if len(ids) > 1:
        assert all(238 <= t <= 493 for t in ids)  # the byte tokens <0x00>..<0xFF>
        assert all(len(p) == 1 for p in pieces)
    # \r has no token of its own: byte fallback <0x0D>.
    assert gemma.tokenize("\r") == [238 + 0x0D]
    assert gemma.piece(238 + 0x0D) == b"\r"
    # A piece with U+2581 in it gives a real space.
    assert gemma.piece(gemma.tokenize(" Hello")[0]) == b" Hello"


def test_streaming_pieces_concatenate_to_text(gemma, refs):
    for case in refs["tokenize"]:
        raw = b"".join(gemma.piece(t) for t in case["ids_no_bos"])
        assert raw.decode("utf-8") == case["text"]


def test_c_abi_buffer_contract(gemma):
    m = gemma.model
    data = b"Hello world, how are you?"
    n = ffi.new("int32_t *")
    # Too small: the count needed comes back with INVALID_ARGUMENT.
    buf = ffi.new("int32_t[]", 1)
    assert lib.tactic_tokenize(m, data, len(data), 0, 0, buf, 1, n) == InvalidArgumentError.status
    needed = n[0]
    assert needed == len(gemma.tokenize(data))
    assert lib.tactic_tokenize(m, data, len(data), 0, 0, ffi.NULL, 0, n) == InvalidArgumentError.status
    assert n[0] == needed
    # Empty text: no tokens, or just BOS.
    assert gemma.tokenize(b"") == []
    assert gemma.tokenize(b"", add_special=True) == [2]
    # Pieces and detokenize report the bytes needed.
    chars = ffi.new("char[]", 1)
    assert lib.tactic_token_to_piece(m, 9259, 0, chars, 1, n) == InvalidArgumentError.status
    assert n[0] == len(gemma.piece(9259))
    # Out-of-range ids are argument errors, not crashes.
    assert lib.tactic_token_to_piece(m, -1, 0, chars, 1, n) == InvalidArgumentError.status
    assert lib.tactic_token_to_piece(m, 262144, 0, chars, 1, n) == InvalidArgumentError.status
    ids = ffi.new("int32_t[]", [9259, 10**9])
    assert lib.tactic_detokenize(m, ids, 2, 0, chars, 1, n) == InvalidArgumentError.status
    assert lib.tactic_tokenize(ffi.NULL, data, len(data), 0, 0, buf, 1, n) == InvalidArgumentError.status
    assert lib.tactic_token_bos(ffi.NULL) == -1


def test_invalid_utf8_is_tokenized_byte_for_byte(gemma):
    data = b"ok \xff\xfe broken \xe2\x82 end"
    ids = gemma.tokenize(data)
    assert b"".join(gemma.piece(t) for t in ids) == data


# ---- bad vocabularies ---------------------------------------------------------


def write_vocab(path, model="llama", pre=None, tokens=None, scores=None, types=None, merges=None, **ids):
    tokens = tokens if tokens is not None else ["<unk>", "<s>", "</s>", "a", "b", "ab", "\u2581"]
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_tokenizer_model(model)
    if pre is not None:
        w.add_tokenizer_pre(pre)
    w.add_token_list(tokens)
    if scores is not None:
        w.add_token_scores(scores)
    if types is not None:
        w.add_token_types(types)
    if merges is not None:
        w.add_token_merges(merges)
    for name, value in ids.items():
        getattr(w, f"add_{name}")(value)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def test_small_spm_vocab(tmp_path):
    scores = [0.0, 0.0, 0.0, -1.0, -1.0, -0.5, -2.0]
    types = [2, 3, 3, 1, 1, 1, 1]
    v = NativeVocab(write_vocab(tmp_path / "v.gguf", scores=scores, types=types))
    # add_space_prefix defaults to on for SPM: "ab ab" -> "▁ab▁ab".
    assert v.tokenize("ab ab", add_special=True) == [1, 6, 5, 6, 5]
    assert v.detokenize([6, 5, 6, 5]) == "ab ab"  # the added space is dropped again
    # No byte tokens: an unknown character falls back to UNK.
    assert v.tokenize("c") == [6, 0]


def test_bad_vocabularies_are_typed_errors(tmp_path):
    e = load_error(write_vocab(tmp_path / "a.gguf", scores=[0.0, 1.0]))
    assert isinstance(e, InvalidModelError) and "scores" in str(e)
    e = load_error(write_vocab(tmp_path / "b.gguf", types=[1] * 3))
    assert isinstance(e, InvalidModelError) and "token_type" in str(e)
    e = load_error(write_vocab(tmp_path / "c.gguf", tokens=["a", "b", "a"]))
    assert isinstance(e, InvalidModelError) and "repeats" in str(e)
    e = load_error(write_vocab(tmp_path / "d.gguf", eos_token_id=99))
    assert isinstance(e, InvalidModelError) and "eos_token_id" in str(e)
    e = load_error(write_vocab(tmp_path / "e.gguf", types=[1, 1, 1, 1, 1, 1, 42]))
    assert isinstance(e, InvalidModelError)
    e = load_error(write_vocab(tmp_path / "f.gguf", model="t5"))
    assert isinstance(e, UnsupportedModelError) and "'t5'" in str(e)
    e = load_error(write_vocab(tmp_path / "g.gguf", model="gpt2", pre="no-such-pre", merges=["a b"]))
    assert isinstance(e, UnsupportedModelError) and "no-such-pre" in str(e)
    e = load_error(write_vocab(tmp_path / "h.gguf", model="gpt2", pre="qwen2"))
    assert isinstance(e, InvalidModelError) and "merges" in str(e)


def test_end_of_generation_tokens_by_text(tmp_path):
    # Tokens named by no key still end generation when their text says so (llama.cpp's
    # list), and are treated as control tokens even if typed normal.
    tokens = ["a", "b", "ab", "<|im_end|>", "<|fim_pad|>", "<|eot_id|>", "<|end|>", "<|return|>", "<|call|>", "x"]
    types = [1, 1, 1, 1, 3, 3, 3, 3, 3, 1]
    path = write_vocab(tmp_path / "eog.gguf", model="gpt2", pre="llama-bpe", tokens=tokens, types=types,
                       merges=["a b"], eos_token_id=9, bos_token_id=0)
    v = NativeVocab(path)
    eog = [t for t in range(len(tokens)) if lib.tactic_token_is_eog(v.model, t)]
    # <|end|> is dropped again when <|return|> and <|call|> exist (gpt-oss).
    assert eog == [3, 4, 5, 7, 8, 9]
    assert v.tokenize("<|im_end|>", parse_special=True) == [3]
    assert v.piece(3) == b""  # now a control token
    assert v.tokenize("ab", add_special=False) == [2]
    assert v.tokenize("ab", add_special=True) == [0, 2]  # llama-bpe adds BOS by default


def test_add_bos_without_bos_token_is_an_error(tmp_path):
    # llama-bpe adds BOS by default; this vocab names none and BPE's default id (11) is
    # outside it.
    tokens = ["a", "b", "ab"]
    e = load_error(write_vocab(tmp_path / "nobos.gguf", model="gpt2", pre="llama-bpe", tokens=tokens, merges=["a b"]))
    assert isinstance(e, InvalidModelError) and "add_bos_token" in str(e)


def _byte_level_chars():
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    out, extra = [], 0
    for b in range(256):
        if b in keep:
            out.append(chr(b))
        else:
            out.append(chr(0x100 + extra))
            extra += 1
    return out


@pytest.mark.parametrize(
    "pre, expected",
    [
        # gpt-2 cleans spaces (llama.cpp's three passes); qwen2 keeps the text as it is.
        ("gpt-2", "a, b! c? d. e'f's'm're've 't 'd 'll"),
        ("qwen2", "a , b ! c ? d . e ' f 's 'm 're 've 't 'd 'll"),
    ],
)
def test_bpe_detokenize_clean_spaces(tmp_path, pre, expected):
    # A byte-level vocab of the 256 single bytes: every text tokenizes, byte by byte.
    path = write_vocab(tmp_path / "bytes.gguf", model="gpt2", pre=pre, tokens=_byte_level_chars(),
                       merges=["a b"], bos_token_id=0, eos_token_id=0)
    v = NativeVocab(path)
    text = "a , b ! c ? d . e ' f 's 'm 're 've 't 'd 'll"
    ids = v.tokenize(text)
    assert len(ids) == len(text)
    assert b"".join(v.piece(t) for t in ids) == text.encode()  # pieces are never cleaned
    assert v.detokenize(ids) == expected


# ---- pre-tokenizer split rules, against the `regex` module -----------------------

GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
LLAMA3_SPLIT = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_SPLIT = LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")
QWEN35_SPLIT = (
    r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}"
    r"| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# llama.cpp's regex lists per pre name (llama-vocab.cpp), applied one after the other.
SPLIT_STAGES = {
    "default": [r"[\p{P}\$\+<=>\^~\|]+", GPT2_SPLIT, r"\p{N}+", r"[0-9][0-9][0-9]"],
    "gpt-2": [GPT2_SPLIT],
    "llama-bpe": [LLAMA3_SPLIT],
    "dbrx": [LLAMA3_SPLIT],
    "qwen2": [QWEN2_SPLIT],
    "qwen35": [QWEN35_SPLIT],
    "starcoder": [r"\p{N}", GPT2_SPLIT],
    "falcon": [r"[\p{P}\$\+<=>\^~\|`]+", GPT2_SPLIT, r"[0-9][0-9][0-9]"],
    # Names that share one of the lists above.
    "llama3": [LLAMA3_SPLIT],
    "chatglm-bpe": [LLAMA3_SPLIT],
    "deepseek-r1-qwen": [QWEN2_SPLIT],
    "stablelm2": [QWEN2_SPLIT],
    "olmo": [GPT2_SPLIT],
    "command-r": [r"\p{N}", GPT2_SPLIT],
    "smollm": [r"\p{N}", GPT2_SPLIT],
}
SPLIT_TEXTS = [
    "Hello, world! It's 12345 o'clock.",
    "x=1+2^3|4~5<6>7$8 `q`",
    "  lead\n\n trail  ",
    "tab\there\r\nnew 3.14159",
    "naïve café 1234567",
    "¿Qué? ¡Sí! «ok» 99%",
    "a''b 'S 'll 'LL 're'VE",
    "日本語123abc",
    "e\u0301t\u0308 \u0301x ٣٤٥",
    "a  b   c\t\t d",
    "\n \n\t x \r\n",
    # Letters new in Unicode 15 (Kawi, CJK Extension H) and 16 (Todhri, Tulu-Tigalari):
    # letters to `regex`, "other" to tables generated from Python 3.11's Unicode 14.
    "a\U00011f04\U00011f05 \U00031350\U00031351!1 \U000105c0b",
    "x\U00011380 'll \U000105c1\U000105c2 9\U00031352",
]


def reference_split(text, stages):
    regex = pytest.importorskip("regex")
    pieces = [text]
    for pattern in stages:
        rx = regex.compile(pattern)
        out = []
        for piece in pieces:
            at = 0
            for m in rx.finditer(piece):  # the piece alone: its end is the text's end
                if m.start() > at:
                    out.append(piece[at : m.start()])
                out.append(m.group())
                at = m.end()
            if at < len(piece):
                out.append(piece[at:])
        pieces = out
    return pieces


@pytest.fixture(scope="module")
def substring_vocab():
    """Every substring of SPLIT_TEXTS is a token, and every split of a token is a
    merge: BPE then joins each pre-tokenized piece into exactly one token, so the
    tokens show the pieces."""
    subs = set()
    for t in SPLIT_TEXTS:
        b = t.encode()
        assert len(b) <= 40
        subs.update(b[i:j] for i in range(len(b)) for j in range(i + 1, len(b) + 1))
    tokens = sorted(subs, key=lambda s: (len(s), s))
    merges = [f"{_bl(t[:k])} {_bl(t[k:])}" for t in tokens for k in range(1, len(t))]
    return [_bl(t) for t in tokens], merges


_BYTE_CHARS = None


def _bl(b: bytes) -> str:
    global _BYTE_CHARS
    if _BYTE_CHARS is None:
        _BYTE_CHARS = _byte_level_chars()
    return "".join(_BYTE_CHARS[x] for x in b)


@pytest.mark.parametrize("pre", sorted(SPLIT_STAGES))
def test_pretokenizer_splits_match_regex(tmp_path, substring_vocab, pre):
    tokens, merges = substring_vocab
    path = write_vocab(tmp_path / f"{pre}.gguf", model="gpt2", pre=pre, tokens=tokens, merges=merges,
                       bos_token_id=0, eos_token_id=0)
    v = NativeVocab(path)
    for text in SPLIT_TEXTS:
        ours = [v.piece(t).decode() for t in v.tokenize(text)]
        assert ours == reference_split(text, SPLIT_STAGES[pre]), repr(text)
