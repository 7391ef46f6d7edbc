"""Tokenizer export: tokenizer.model (SentencePiece -> GGUF "llama") or tokenizer.json
(byte-level BPE -> GGUF "gpt2", with the pre-tokenizer identified), plus special
token ids, add_bos/add_eos flags and the chat template."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import gguf

from .errors import CheckpointFormatError, SourceNotFoundError, UnsupportedTokenizerError
from .source import read_json
from .spm_model import read_spm

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Byte-level BPE pre-tokenizer regexes (as tokenizer.json writes them) -> GGUF pre name.
_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
           r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")
_CASE_FOLDED = "(?i:'s|'t|'re|'ve|'m|'ll|'d)"
_CASE_SPELLED = "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
KNOWN_SPLIT_REGEXES = {
    _LLAMA3: "llama-bpe",
    _QWEN2: "qwen2",
    _LLAMA3.replace(_CASE_FOLDED, _CASE_SPELLED): "llama-bpe",
    _QWEN2.replace(_CASE_FOLDED, _CASE_SPELLED): "qwen2",
}
# Texts that end a turn, in the order llama.cpp looks for an EOT token.
EOT_TEXTS = ["<|eot_id|>", "<|im_end|>", "<end_of_turn>", "<|end|>", "<|endoftext|>"]


@dataclass
class Vocab:
    model: str                    # "llama" (SentencePiece) or "gpt2" (byte-level BPE)
    tokens: list[str]
    types: list[int]
    scores: list[float] | None = None
    merges: list[str] | None = None
    pre: str | None = None
    add_space_prefix: bool | None = None
    special: dict[str, int] = field(default_factory=dict)  # bos, eos, unk, pad, eot -> id
    add_bos: bool | None = None
    add_eos: bool | None = None
    chat_template: str | list | None = None


def identify_pre_tokenizer(tj: dict) -> str:
    """The GGUF tokenizer.ggml.pre for a byte-level BPE tokenizer.json, or an error."""
    norm = tj.get("normalizer")
    if norm is not None and norm.get("type") != "NFC":
        raise UnsupportedTokenizerError(f"tokenizer.json: normalizer {norm.get('type')!r} is not supported")
    pt = tj.get("pre_tokenizer")
    if not isinstance(pt, dict):
        raise UnsupportedTokenizerError("tokenizer.json has no pre_tokenizer; cannot tell which one to use")
    if pt.get("type") == "ByteLevel":
        if pt.get("add_prefix_space"):
            raise UnsupportedTokenizerError("tokenizer.json: ByteLevel with add_prefix_space is not supported")
        if pt.get("use_regex", True):
            return "gpt-2"
    if pt.get("type") == "Sequence":
        parts = pt.get("pretokenizers") or []
        kinds = [p.get("type") for p in parts]
        if (kinds == ["Split", "ByteLevel"] and not parts[1].get("use_regex", True)
                and not parts[1].get("add_prefix_space") and not parts[0].get("invert")
                and parts[0].get("behavior", "Isolated") == "Isolated"):
            regex = (parts[0].get("pattern") or {}).get("Regex", "")
            if regex in KNOWN_SPLIT_REGEXES:
                return KNOWN_SPLIT_REGEXES[regex]
            raise UnsupportedTokenizerError(
                f"tokenizer.json: unknown pre-tokenizer regex {regex!r}; known: llama-bpe (Llama 3), qwen2"
            )
    raise UnsupportedTokenizerError(
        f"tokenizer.json: unknown pre-tokenizer {json.dumps(pt)[:300]}; known: "
        "ByteLevel (gpt-2), Split(llama-3 regex)+ByteLevel (llama-bpe), Split(qwen2 regex)+ByteLevel (qwen2)"
    )


def _is_byte_level(tj: dict) -> bool:
    blob = json.dumps([tj.get("pre_tokenizer"), tj.get("decoder")])
    return '"ByteLevel"' in blob


def _bpe_vocab(tj: dict, n_vocab: int) -> Vocab:
    model = tj.get("model") or {}
    if model.get("type", "BPE") != "BPE" or "vocab" not in model:
        raise UnsupportedTokenizerError(f"tokenizer.json: model type {model.get('type')!r} is not byte-level BPE")
    if not _is_byte_level(tj):
        raise UnsupportedTokenizerError(
            "tokenizer.json is a SentencePiece-style BPE (not byte-level); tokenizer.model is needed"
        )
    pre = identify_pre_tokenizer(tj)
    by_id: dict[int, str] = {}
    for text, i in model["vocab"].items():
        by_id[int(i)] = text
    added = {}
    for a in tj.get("added_tokens") or []:
        by_id[int(a["id"])] = a["content"]
        added[int(a["id"])] = a
    if by_id and max(by_id) >= n_vocab:
        raise UnsupportedTokenizerError(
            f"tokenizer.json has token id {max(by_id)} but the model's vocab_size is {n_vocab}"
        )
    tokens, types = [], []
    for i in range(n_vocab):
        if i not in by_id:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
        elif i in added:
            tokens.append(by_id[i])
            types.append(CONTROL if added[i].get("special") else USER_DEFINED)
        else:
            tokens.append(by_id[i])
            types.append(NORMAL)
    merges = []
    for m in model.get("merges") or []:
        merges.append(m if isinstance(m, str) else " ".join(m))
    return Vocab("gpt2", tokens, types, merges=merges, pre=pre)


def _spm_vocab(path: Path, directory: Path, n_vocab: int, tok_cfg: dict) -> Vocab:
    spm = read_spm(path)
    if len(spm.pieces) > n_vocab:
        raise UnsupportedTokenizerError(
            f"tokenizer.model has {len(spm.pieces)} pieces but the model's vocab_size is {n_vocab}"
        )
    tokens, scores, types = list(spm.pieces), list(spm.scores), list(spm.types)
    for i in range(len(tokens), n_vocab):
        tokens.append(f"[PAD{i}]")
        scores.append(-1000.0)
        types.append(UNUSED)
    added_json = read_json(directory / "added_tokens.json")
    for text, i in added_json.items():
        i = int(i)
        if len(spm.pieces) <= i < n_vocab:
            tokens[i], scores[i], types[i] = text, -1000.0, USER_DEFINED
    # tokenizer_config.json's added tokens override: special ones are control tokens,
    # the others user-defined (always split out before SentencePiece runs).
    for key, info in (tok_cfg.get("added_tokens_decoder") or {}).items():
        i = int(key)
        if i >= n_vocab:
            continue
        text = info["content"]
        if info.get("special"):
            types[i] = CONTROL
        else:
            text = text.replace("\u2581", " ")
            types[i] = USER_DEFINED
        tokens[i], scores[i] = text, -1000.0
    return Vocab("llama", tokens, types, scores=scores, add_space_prefix=spm.add_dummy_prefix)


def _token_text(v) -> str | None:
    if isinstance(v, dict):
        return v.get("content")
    return v if isinstance(v, str) else None


def _first_id(v) -> int | None:
    if isinstance(v, list):
        v = v[0] if v else None
    return int(v) if isinstance(v, int) else None


def _bpe_adds_bos(tj: dict, bos_text: str | None) -> bool:
    pp = tj.get("post_processor") or {}
    for proc in pp.get("processors", [pp]):
        if proc.get("type") == "TemplateProcessing":
            single = proc.get("single") or []
            if single and "SpecialToken" in single[0]:
                return single[0]["SpecialToken"].get("id") == bos_text or bos_text is None
    return False


def load_vocab(directory: Path, n_vocab: int, config: dict) -> Vocab:
    tok_cfg = read_json(directory / "tokenizer_config.json")
    spm_path, json_path = directory / "tokenizer.model", directory / "tokenizer.json"
    tj: dict = {}
    if spm_path.is_file():
        vocab = _spm_vocab(spm_path, directory, n_vocab, tok_cfg)
    elif json_path.is_file():
        tj = read_json(json_path)
        vocab = _bpe_vocab(tj, n_vocab)
    else:
        raise SourceNotFoundError(f"no tokenizer in {directory}: tokenizer.model or tokenizer.json is needed")

    index: dict[str, int] = {}
    for i, t in enumerate(vocab.tokens):
        index.setdefault(t, i)
    for kind in ("bos", "eos", "unk", "pad"):
        text = _token_text(tok_cfg.get(f"{kind}_token"))
        tid = index.get(text) if text is not None else None
        if tid is None:
            tid = _first_id(config.get(f"{kind}_token_id"))
        if tid is None and vocab.model == "llama" and kind == "unk":
            tid = next((i for i, t in enumerate(vocab.types) if t == UNKNOWN), None)
        if tid is not None:
            if not 0 <= tid < n_vocab:
                raise CheckpointFormatError(f"{kind}_token_id {tid} is outside the vocabulary (0..{n_vocab - 1})")
            vocab.special[kind] = tid
    for text in EOT_TEXTS:
        if text in index and vocab.types[index[text]] == CONTROL:
            vocab.special["eot"] = index[text]
            break

    bos_text = vocab.tokens[vocab.special["bos"]] if "bos" in vocab.special else None
    if "add_bos_token" in tok_cfg:
        vocab.add_bos = bool(tok_cfg["add_bos_token"])
    else:
        vocab.add_bos = True if vocab.model == "llama" else _bpe_adds_bos(tj, bos_text)
    vocab.add_eos = bool(tok_cfg.get("add_eos_token", False))

    template = tok_cfg.get("chat_template")
    if template is None and (directory / "chat_template.jinja").is_file():
        template = (directory / "chat_template.jinja").read_text(encoding="utf-8")
    if template is None:
        template = read_json(directory / "chat_template.json").get("chat_template")
    vocab.chat_template = template
    return vocab


def write_vocab(w: gguf.GGUFWriter, v: Vocab) -> None:
    w.add_tokenizer_model(v.model)
    w.add_tokenizer_pre(v.pre or "default")
    w.add_token_list(v.tokens)
    w.add_token_types(v.types)
    if v.scores is not None:
        w.add_token_scores(v.scores)
    if v.merges:
        w.add_token_merges(v.merges)
    if v.add_space_prefix is not None:
        w.add_add_space_prefix(v.add_space_prefix)
    writers = {"bos": w.add_bos_token_id, "eos": w.add_eos_token_id, "unk": w.add_unk_token_id,
               "pad": w.add_pad_token_id, "eot": w.add_eot_token_id}
    for kind, tid in v.special.items():
        writers[kind](tid)
    if v.add_bos is not None:
        w.add_add_bos_token(v.add_bos)
    if v.add_eos is not None:
        w.add_add_eos_token(v.add_eos)
    if v.chat_template:
        w.add_chat_template(v.chat_template)
