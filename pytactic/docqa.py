"""Questions about documents: the documents enter the chat template once (the first
user turn), their K/V are cached (in memory, and on disk keyed by model and
document), and every question after evaluates only its own tokens."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Iterator, List, Optional

from .errors import ContextLengthError, SessionError

_SENTINEL = "\u241fQUESTION\u241f"  # marks where the question starts in the rendered template
INSTRUCTION = "Read the following document, then answer the questions about it."
# Room left after the document for a question and its answer, at least.
_MIN_ROOM = 256


def cache_dir() -> Path:
    """The user's cache folder for document sessions (platformdirs, else XDG)."""
    env = os.environ.get("PYTACTIC_CACHE_DIR")
    if env:
        return Path(env) / "sessions"
    try:
        from platformdirs import user_cache_dir

        return Path(user_cache_dir("pytactic")) / "sessions"
    except ImportError:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        return Path(base) / "pytactic" / "sessions"


class DocChat:
    """A conversation about a document with one Model.

    chat = DocChat(model, text, cache=True, on_progress=bar)
    for piece in chat.ask("What is this?"): print(piece, end="")
    """

    def __init__(self, model, document: str, *, system: Optional[str] = None, cache: bool = True,
                 names: Optional[List[str]] = None, on_progress: Optional[Callable[[int, int], None]] = None):
        self.model = model
        self.document = document
        self.system = system
        self.cache = cache
        self.names = list(names or [])
        self.on_progress = on_progress
        self.messages: List[dict] = []
        self.loaded_from_cache = False
        first = self._first_user_text(_SENTINEL)
        text = model.apply_chat_template(self._with_system([{"role": "user", "content": first}]))
        cut = text.find(_SENTINEL)
        if cut < 0:
            raise ValueError("the chat template does not keep the user's text verbatim")
        self.prefix_text = text[:cut]
        self.doc_ids = self._tokenize_prompt(self.prefix_text, first=True)
        need = len(self.doc_ids) + _MIN_ROOM
        if need > model.n_ctx:
            raise ContextLengthError(
                f"the document has {len(self.doc_ids)} tokens (in the chat template) but the context holds "
                f"{model.n_ctx} tokens, {_MIN_ROOM} of which are kept for the question and answer: at most "
                f"{model.n_ctx - _MIN_ROOM} fit (load the model with a larger n_ctx, or shorten the document)")

    # -- prompt ----------------------------------------------------------------

    def _first_user_text(self, question: str) -> str:
        return f"{INSTRUCTION}\n\n{self.document.strip()}\n\n{question}"

    def _with_system(self, messages):
        return ([{"role": "system", "content": self.system}] if self.system else []) + messages

    def _tokenize_prompt(self, text: str, first: bool) -> List[int]:
        m = self.model
        add_bos = False
        if first:
            bos = m.token_bos
            bos_text = m.token_to_piece(bos, special=True).decode("utf-8", "replace") if bos >= 0 else ""
            add_bos = not (bos_text and text.startswith(bos_text))
        return m.tokenize(text, add_bos=add_bos, special=True)

    def prompt_ids(self, question: str) -> List[int]:
        """The conversation so far plus this question: the document's tokens, then the rest."""
        msgs = list(self.messages) + [{"role": "user", "content": question}]
        msgs[0] = {"role": "user", "content": self._first_user_text(msgs[0]["content"])}
        text = self.model.apply_chat_template(self._with_system(msgs))
        if not text.startswith(self.prefix_text):
            raise ValueError("the chat template renders the document differently in a longer conversation")
        return self.doc_ids + self._tokenize_prompt(text[len(self.prefix_text):], first=False)

    # -- the document's cache -----------------------------------------------------

    @property
    def session_path(self) -> Path:
        h = hashlib.blake2b(digest_size=10)
        h.update(b"".join(t.to_bytes(4, "little") for t in self.doc_ids))
        m = self.model
        return cache_dir() / f"{m.fingerprint[:16]}-{h.hexdigest()}-{m.n_ctx}.kv"

    def prepare(self) -> float:
        """Make the model's cache hold the document (from memory, the disk cache, or by
        reading it). Returns the seconds it took."""
        t0 = time.perf_counter()
        m = self.model
        if m.cached_tokens[: len(self.doc_ids)] == self.doc_ids:
            return 0.0
        path = self.session_path
        if self.cache and path.is_file():
            try:
                m.load_session(path)
                if m.cached_tokens == self.doc_ids:
                    self.loaded_from_cache = True
                    return time.perf_counter() - t0
            except (SessionError, OSError):
                pass  # a stale or damaged entry: read the document again and replace it
        m.eval_prefix(self.doc_ids, on_progress=self.on_progress)
        if self.cache:
            try:
                m.save_session(path, meta={"documents": self.names, "n_doc_tokens": len(self.doc_ids)})
            except OSError:
                pass  # a read-only cache folder must not stop the answer
        return time.perf_counter() - t0

    # -- questions -----------------------------------------------------------------

    def ask(self, question: str, *, max_tokens: Optional[int] = None, **sampling) -> Iterator[str]:
        """Stream the answer. The question and the (possibly partial) answer stay in the
        conversation."""
        self.prepare()
        ids = self.prompt_ids(question)
        pieces = self.model.generate(ids, max_tokens, stream=True, on_progress=self.on_progress, **sampling)
        answer: List[str] = []
        self.messages.append({"role": "user", "content": question})
        try:
            for piece in pieces:
                answer.append(piece)
                yield piece
        finally:
            pieces.close()
            self.messages.append({"role": "assistant", "content": "".join(answer)})

    def reset(self) -> None:
        """Forget the questions and answers; the document stays cached."""
        self.messages.clear()
