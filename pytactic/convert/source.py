"""Find the checkpoint: a local directory, or a Hugging Face repo id fetched (or found
in the local cache) with huggingface_hub. HF_HUB_OFFLINE=1 is honoured by
huggingface_hub itself: then only the cache is consulted."""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import CheckpointFormatError, SourceNotFoundError

# Files a conversion reads; weights in other formats are not downloaded.
_PATTERNS = [
    "config.json",
    "generation_config.json",
    "*.safetensors",
    "model.safetensors.index.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def resolve_source(src: str | Path, revision: str | None = None) -> Path:
    """The local directory holding the checkpoint named by `src`."""
    p = Path(src).expanduser()
    if p.exists():
        if not p.is_dir():
            raise SourceNotFoundError(f"{p} is a file; give the checkpoint's directory")
        return p
    if not _REPO_ID.match(str(src)):
        raise SourceNotFoundError(f"{src}: no such directory, and not a Hugging Face repo id (owner/name)")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise SourceNotFoundError(f"{src}: huggingface_hub is needed to fetch a repo id") from e
    try:
        return Path(snapshot_download(repo_id=str(src), revision=revision, allow_patterns=_PATTERNS))
    except Exception as e:  # the hub raises many kinds; all mean "not available"
        raise SourceNotFoundError(
            f"{src}: could not fetch it from the Hugging Face hub or find it in the cache "
            f"(with HF_HUB_OFFLINE=1 only the cache is used): {type(e).__name__}: {e}"
        ) from e


def read_json(path: Path, required: bool = False) -> dict:
    """A JSON object from `path`; {} when absent and not required."""
    if not path.is_file():
        if required:
            raise SourceNotFoundError(f"{path.name} not found in {path.parent}")
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointFormatError(f"{path.name}: not valid JSON ({e})") from e
    if not isinstance(data, dict):
        raise CheckpointFormatError(f"{path.name}: expected a JSON object")
    return data
