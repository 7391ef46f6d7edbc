"""Text out of an uploaded document: plain text and Markdown as they are (UTF-8,
else Latin-1), PDF through pypdf when it is installed."""

from __future__ import annotations

import io

from .errors import APIError, bad_request

TEXT_SUFFIXES = (".txt", ".md", ".markdown", ".text", ".rst", ".csv", ".log", ".json", ".html", ".htm")


def pdf_supported() -> bool:
    try:
        import pypdf  # noqa: F401
    except ImportError:
        return False
    return True


def extract_text(name: str, data: bytes) -> dict:
    """{"text", "pages" (PDF only), "chars"} of a file's bytes, or an APIError."""
    lower = name.lower()
    if lower.endswith(".pdf") or data[:5] == b"%PDF-":
        return _pdf(data)
    if lower and "." in lower and not lower.endswith(TEXT_SUFFIXES):
        raise APIError(415, f"Cannot read '{name}': the page reads .txt, .md and .pdf files.",
                       "invalid_request_error", "file", "unsupported_file_type")
    if b"\x00" in data[:4096]:
        raise APIError(415, f"'{name}' looks like a binary file, not text.", "invalid_request_error", "file",
                       "unsupported_file_type")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return {"text": text, "chars": len(text)}


def _pdf(data: bytes) -> dict:
    if not pdf_supported():
        raise APIError(415, "Reading PDF needs pypdf on the server: pip install 'pytactic[server]' or pypdf.",
                       "invalid_request_error", "file", "pdf_unsupported")
    from pypdf import PdfReader

    try:
        reader = PdfReader(io.BytesIO(data))
        pages = [(p.extract_text() or "").strip() for p in reader.pages]
    except Exception as e:  # pypdf raises many kinds on malformed files: all mean 'unreadable'
        raise bad_request(f"Could not read the PDF: {e}", "file", "invalid_pdf") from None
    text = "\n\n".join(p for p in pages if p)
    if not text:
        raise bad_request("The PDF has no extractable text (a scan?).", "file", "empty_pdf")
    return {"text": text, "pages": len(pages), "chars": len(text)}
