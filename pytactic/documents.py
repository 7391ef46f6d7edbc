"""Reading documents as plain text: text and Markdown as they are, HTML through
Beautiful Soup and PDF through pypdf (the optional extra `pip install "pytactic[docs]"`)."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import TacticError


class DocumentError(TacticError, ValueError):
    """A document cannot be read (missing, unsupported, or its reader is not installed)."""


_HTML = {".html", ".htm", ".xhtml"}
_PDF = {".pdf"}


def _missing(package: str, kind: str) -> DocumentError:
    return DocumentError(f"reading {kind} documents needs the '{package}' package: "
                         f"pip install \"pytactic[docs]\" (or pip install {package})")


def html_to_text(html: str) -> str:
    try:
        from bs4 import BeautifulSoup
    except ImportError:
        raise _missing("beautifulsoup4", "HTML") from None
    soup = BeautifulSoup(html, "html.parser")
    for tag in soup(["script", "style", "noscript", "template"]):
        tag.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def pdf_to_text(path: str) -> str:
    try:
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError
    except ImportError:
        raise _missing("pypdf", "PDF") from None
    try:
        reader = PdfReader(path)
        pages = [page.extract_text() or "" for page in reader.pages]
    except (PdfReadError, ValueError, KeyError) as e:
        raise DocumentError(f"{path}: not a readable PDF ({e})") from None
    return "\n\n".join(p.strip() for p in pages if p.strip())


def read_document(path) -> str:
    """The text of a document, by its extension (anything else is read as UTF-8 text)."""
    path = os.fspath(path)
    if path == "-":
        import sys

        return sys.stdin.read()
    p = Path(path)
    if not p.exists():
        raise DocumentError(f"document not found: {path}")
    if p.is_dir():
        raise DocumentError(f"{path} is a directory, not a document")
    ext = p.suffix.lower()
    if ext in _PDF:
        text = pdf_to_text(path)
    else:
        raw = p.read_bytes()
        if ext not in _HTML and b"\0" in raw[:4096]:
            raise DocumentError(f"{path} looks binary; give a text, Markdown, HTML or PDF file")
        text = raw.decode("utf-8", "replace")
        if ext in _HTML:
            text = html_to_text(text)
    if not text.strip():
        raise DocumentError(f"{path}: no text found")
    return text


def join_documents(named_texts) -> str:
    """Several documents in one text, each under its file name."""
    named_texts = list(named_texts)
    if len(named_texts) == 1:
        return named_texts[0][1].strip()
    return "\n\n".join(f"=== {name} ===\n{text.strip()}" for name, text in named_texts)
