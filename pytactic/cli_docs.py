"""The document commands of the CLI (ask, chat --doc, sessions) and the chat prompt's
line reader, which takes a multi-line paste as one message."""

from __future__ import annotations

import os
import select
import sys
import time
from typing import Optional

# Lines that arrive within this long of the previous one belong to the same paste.
_PASTE_GAP_S = 0.05
_BLOCK = '"""'

# An answer stops here unless -n says otherwise: a model that never writes its
# end-of-turn token must not fill the whole (document-sized) context.
ANSWER_MAX_TOKENS = 512


def _more_input_waiting(timeout: float) -> bool:
    try:
        ready, _, _ = select.select([sys.stdin], [], [], timeout)
    except (OSError, ValueError):  # no selectable stdin (e.g. some IDE consoles)
        return False
    return bool(ready)


def read_message(prompt: str = "> ") -> Optional[str]:
    """One message from the user, or None on Ctrl-D / Ctrl-C. A paste of several lines
    is one message (lines that follow at once are joined); so is a block between two
    lines of three double quotes."""
    try:
        first = input(prompt)
    except (EOFError, KeyboardInterrupt):
        return None
    lines = [first]
    try:
        if first.strip() == _BLOCK:  # explicit block: until the closing quotes
            lines = []
            while True:
                line = input("... ")
                if line.strip() == _BLOCK:
                    break
                lines.append(line)
        elif sys.stdin.isatty():
            while _more_input_waiting(_PASTE_GAP_S):
                lines.append(input())
    except EOFError:
        pass
    except KeyboardInterrupt:
        return None
    return "\n".join(lines)


def _doc_chat(a, model):
    from .docqa import DocChat
    from .documents import join_documents, read_document
    from .progress import ProgressBar

    named = [(os.path.basename(p) if p != "-" else "stdin", read_document(p)) for p in a.doc]
    bar = None if a.no_progress else ProgressBar("reading")
    return DocChat(model, join_documents(named), system=a.system, cache=not a.no_cache,
                   names=[n for n, _ in named], on_progress=bar)


def _prepare(chat) -> None:
    n = len(chat.doc_ids)
    took = chat.prepare()
    if chat.loaded_from_cache:
        print(f"[document: {n:,} tokens, loaded from the cache in {took:.2f}s]", file=sys.stderr, flush=True)
    elif took > 0:
        print(f"[document: {n:,} tokens, read in {took:.1f}s ({n / took:,.0f} tok/s)"
              f"{', cached for next time' if chat.cache else ''}]", file=sys.stderr, flush=True)


def _answer(chat, question: str, a) -> bool:
    """Streams one answer; False when interrupted."""
    from .cli import _sampling, stream_and_report

    max_tokens = a.max_tokens if a.max_tokens is not None else ANSWER_MAX_TOKENS
    pieces = chat.ask(question, max_tokens=max_tokens, stop=a.stop, **_sampling(a))
    return not stream_and_report(pieces, chat.model)


def _kv_line(model) -> None:
    from .context_size import describe_kv_memory

    print(f"[n_ctx {model.n_ctx:,}: {describe_kv_memory(model.kv_memory())}]", file=sys.stderr, flush=True)


def cmd_ask(a) -> int:
    from .cli import _load

    question = sys.stdin.read() if a.question == "-" else a.question
    with _load(a, chat_format=a.chat_format) as model:
        _kv_line(model)
        chat = _doc_chat(a, model)
        try:
            _prepare(chat)
        except KeyboardInterrupt:
            print("\n[reading cancelled]", file=sys.stderr)
            return 130
        return 0 if _answer(chat, question, a) else 130


def cmd_doc_chat(a) -> int:
    from .cli import _load

    with _load(a, chat_format=a.chat_format) as model:
        _kv_line(model)
        chat = _doc_chat(a, model)
        print(f"pytactic chat about {', '.join(chat.names)} ({model.path}, n_ctx={model.n_ctx:,}). "
              f"Ctrl-D to quit, Ctrl-C while it reads or writes to stop, /reset to forget the questions; "
              f'paste several lines at once, or type {_BLOCK} on its own line to start and end a block.',
              file=sys.stderr, flush=True)
        try:
            _prepare(chat)
        except KeyboardInterrupt:
            print("\n[reading cancelled]", file=sys.stderr)
            return 130
        while True:
            message = read_message()
            if message is None:
                print(flush=True)
                return 0
            if not message.strip():
                continue
            if message.strip() == "/reset":
                chat.reset()
                print("[questions cleared; the document stays]", file=sys.stderr, flush=True)
                continue
            try:
                _answer(chat, message, a)
            except KeyboardInterrupt:  # while reading the question
                print(flush=True)
            except Exception as e:
                print(f"error: {e}", file=sys.stderr, flush=True)


def cmd_sessions(a) -> int:
    from .docqa import cache_dir
    from .errors import SessionError
    from .session import read_header

    folder = cache_dir()
    files = sorted(folder.glob("*.kv")) if folder.is_dir() else []
    if a.action == "clear":
        total = 0
        for f in files:
            total += f.stat().st_size
            f.unlink()
        print(f"removed {len(files)} sessions ({total / 2**20:.1f} MiB) from {folder}")
        return 0
    print(f"{len(files)} sessions in {folder}")
    for f in files:
        st = f.stat()
        try:
            h = read_header(f)
            docs = ", ".join(h.get("meta", {}).get("documents", [])) or "?"
            desc = f"{h.get('model_file', '?')}, {h.get('n_tokens', 0):,} tokens, n_ctx {h.get('n_ctx')}: {docs}"
        except (SessionError, OSError) as e:
            desc = f"unreadable ({e})"
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(st.st_mtime))
        print(f"  {when}  {st.st_size / 2**20:7.1f} MiB  {desc}")
    return 0
