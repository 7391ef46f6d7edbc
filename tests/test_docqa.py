"""Questions about a long document: the document is read once, follow-up questions
evaluate only their own tokens (the native counter of evaluated tokens says so), and
the greedy answers equal those of a fresh model given the whole prompt at once."""

import struct

import pytest

from pytactic import Model
from pytactic.docqa import DocChat
from pytactic.documents import DocumentError, read_document
from pytactic.errors import ContextLengthError

pytestmark = pytest.mark.slow
N_THREADS = 2


def long_document(model, min_tokens):
    """Python's own reference text (the pydoc topics), joined to at least min_tokens."""
    from pydoc_data.topics import topics

    parts, n = [], 0
    for name in sorted(topics):
        parts.append(f"## {name}\n{topics[name]}")
        n += len(model.tokenize(parts[-1], add_bos=False))
        if n >= min_tokens:
            break
    return "\n\n".join(parts)


def fresh_answer(path, n_ctx, ids, max_tokens):
    with Model(path, n_ctx=n_ctx, n_threads=N_THREADS) as fresh:
        return fresh.generate(ids, max_tokens, temperature=0), fresh.last_stats


def test_follow_up_evaluates_only_its_own_tokens_and_answers_like_a_fresh_model(gemma_path):
    n_ctx = 12288
    with Model(gemma_path, n_ctx=n_ctx, n_threads=N_THREADS) as model:
        text = long_document(model, 8200)
        chat = DocChat(model, text, cache=False)
        assert len(chat.doc_ids) >= 8192
        answers, prompts, stats = [], [], []
        for q in ("What does the 'assert' statement do?", "And what is the difference with 'raise'?"):
            prompts.append(chat.prompt_ids(q))
            answers.append("".join(chat.ask(q, max_tokens=24, temperature=0)))
            stats.append(model.last_stats)
        first, second = stats
        # First question: the whole prompt was evaluated.
        assert first.n_evaluated == len(prompts[0]) - first.n_cached
        # Follow-up: the conversation so far (document, Q1, A1) is reused; the native
        # counter shows that only the tokens after it were evaluated.
        reused = len(prompts[0]) + len(first.tokens)  # the cache after the first answer
        assert second.n_cached >= reused - 2  # the last answer token(s) + end-of-turn re-rendered
        assert second.n_evaluated == len(prompts[1]) - second.n_cached
        assert second.n_evaluated < 64
        assert prompts[1][: len(chat.doc_ids)] == chat.doc_ids
    for ids, answer in zip(prompts, answers):
        expect, st = fresh_answer(gemma_path, n_ctx, ids, 24)
        assert st.n_evaluated == len(ids)  # the reference read everything
        assert answer == expect


def test_new_question_on_gemma3_reuses_the_document_through_a_ring_checkpoint(gemma_path):
    # A small n_batch makes the sliding-window rings short (window 512 + 64): after the
    # first answer they no longer hold the document's last window, and only the
    # checkpoint taken after the document lets the second conversation reuse it.
    n_ctx, n_batch = 4096, 64
    with Model(gemma_path, n_ctx=n_ctx, n_batch=n_batch, n_threads=N_THREADS) as model:
        text = long_document(model, 1500)
        chat = DocChat(model, text, cache=False)
        "".join(chat.ask("Summarize the first section.", max_tokens=120, temperature=0))
        assert model.kv_memory()["checkpoints"] > 0
        chat.reset()  # a new conversation about the same document
        q = "What is the first heading?"
        ids = chat.prompt_ids(q)
        answer = "".join(chat.ask(q, max_tokens=16, temperature=0))
        st = model.last_stats
        assert st.n_cached >= len(chat.doc_ids)
        assert st.n_evaluated == len(ids) - st.n_cached
    expect, _ = fresh_answer(gemma_path, n_ctx, ids, 16)
    assert answer == expect


def test_a_document_that_does_not_fit_names_both_numbers(gemma_path):
    with Model(gemma_path, n_ctx=1024, n_threads=N_THREADS) as model:
        text = long_document(model, 2000)
        with pytest.raises(ContextLengthError) as e:
            DocChat(model, text, cache=False)
        msg = str(e.value)
        n_doc = len(model.tokenize(text, add_bos=False))
        assert "1024" in msg and "768" in msg  # the context, and what fits of it
        got = int(msg.split(" tokens")[0].split()[-1])
        assert got >= n_doc  # the document's count (template included)


# -- reading documents ------------------------------------------------------------

def _tiny_pdf(text):
    """A one-page PDF written by hand from the PDF 1.4 spec (Helvetica, one text run)."""
    stream = f"BT /F1 12 Tf 72 720 Td ({text}) Tj ET".encode()
    objs = [b"<< /Type /Catalog /Pages 2 0 R >>",
            b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> "
            b"/Contents 5 0 R >>",
            b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
            b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream"]
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for i, body in enumerate(objs, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % i + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objs) + 1)
    for off in offsets:
        out += b"%010d 00000 n \n" % off
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objs) + 1, xref)
    return bytes(out)


def test_reads_text_markdown_html_and_pdf(tmp_path):
    (tmp_path / "a.txt").write_text("plain text\nsecond line")
    assert read_document(tmp_path / "a.txt") == "plain text\nsecond line"
    (tmp_path / "b.md").write_text("# Title\n\n*emphasis*")
    assert read_document(tmp_path / "b.md") == "# Title\n\n*emphasis*"
    pytest.importorskip("bs4", reason="beautifulsoup4 (the [docs] extra) reads HTML")
    (tmp_path / "c.html").write_text("<html><head><style>p{}</style><script>x=1</script></head>"
                                     "<body><h1>Head</h1><p>Para <b>bold</b></p></body></html>")
    text = read_document(tmp_path / "c.html")
    assert "Head" in text and "Para" in text and "bold" in text and "x=1" not in text and "p{}" not in text
    pytest.importorskip("pypdf", reason="pypdf (the [docs] extra) reads PDF")
    (tmp_path / "d.pdf").write_bytes(_tiny_pdf("Hello from a PDF"))
    assert read_document(tmp_path / "d.pdf").strip() == "Hello from a PDF"


def test_unreadable_documents_are_clear_errors(tmp_path):
    with pytest.raises(DocumentError, match="not found"):
        read_document(tmp_path / "missing.txt")
    (tmp_path / "bin.txt").write_bytes(b"\0\1\2" * 10)
    with pytest.raises(DocumentError, match="binary"):
        read_document(tmp_path / "bin.txt")
    pytest.importorskip("pypdf", reason="pypdf (the [docs] extra) reads PDF")
    (tmp_path / "bad.pdf").write_bytes(b"%PDF-1.4 garbage")
    with pytest.raises(DocumentError):
        read_document(tmp_path / "bad.pdf")


def test_a_missing_reader_says_which_extra_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bs4", None)  # import bs4 -> ImportError
    monkeypatch.setitem(sys.modules, "pypdf", None)
    (tmp_path / "c.html").write_text("<p>x</p>")
    with pytest.raises(DocumentError, match=r"pytactic\[docs\].*beautifulsoup4"):
        read_document(tmp_path / "c.html")
    (tmp_path / "d.pdf").write_bytes(b"%PDF-1.4")
    with pytest.raises(DocumentError, match=r"pytactic\[docs\].*pypdf"):
        read_document(tmp_path / "d.pdf")
