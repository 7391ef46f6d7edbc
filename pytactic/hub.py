"""Model.from_pretrained: a GGUF file from the Hugging Face Hub, through
huggingface_hub's own cache (so HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE and
HF_ENDPOINT behave as everywhere else)."""

from __future__ import annotations

import fnmatch
import os
from typing import Optional

from .errors import ModelFileError

_GLOB = set("*?[")


def _cached_files(repo_id: str, revision: Optional[str], cache_dir) -> list:
    """Files of a repo revision present in the local cache (for globs offline). The
    library finds the revision's snapshot (refs, commit hashes, cache location)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        snap = snapshot_download(repo_id, revision=revision, cache_dir=cache_dir, local_files_only=True)
    except LocalEntryNotFoundError:
        return []
    out = []
    for dirpath, _, files in os.walk(snap):
        for f in files:
            out.append(os.path.relpath(os.path.join(dirpath, f), snap).replace(os.sep, "/"))
    return out


def resolve_filename(repo_id: str, pattern: str, *, revision=None, cache_dir=None, token=None,
                     endpoint=None, local_files_only=False) -> str:
    """The one file of the repo that pattern (a name or a glob like "*Q4_K_M.gguf")
    names; an error listing the candidates if it names none or several."""
    if not _GLOB & set(pattern):
        return pattern
    from huggingface_hub import constants

    if local_files_only or constants.HF_HUB_OFFLINE:
        files = _cached_files(repo_id, revision, cache_dir)
    else:
        from huggingface_hub import HfApi

        files = HfApi(endpoint=endpoint, token=token).list_repo_files(repo_id, revision=revision)
    matches = sorted(f for f in files if fnmatch.fnmatch(f, pattern))
    if len(matches) == 1:
        return matches[0]
    ggufs = sorted(f for f in files if f.endswith(".gguf"))
    if not matches:
        raise ModelFileError(f"no file of {repo_id} matches {pattern!r}; its GGUF files: {ggufs or 'none'}")
    raise ModelFileError(f"{pattern!r} matches several files of {repo_id}: {matches}; name one")


def download(repo_id: str, filename: str, *, revision: Optional[str] = None, cache_dir=None,
             local_dir=None, token=None, endpoint: Optional[str] = None, local_files_only: bool = False,
             force_download: bool = False) -> str:
    """Path of repo_id/filename in the local cache, downloading it if needed."""
    try:
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import (
            EntryNotFoundError,
            HfHubHTTPError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as e:  # pragma: no cover - a declared dependency
        raise ImportError("Model.from_pretrained needs huggingface_hub: pip install huggingface_hub") from e

    name = resolve_filename(repo_id, filename, revision=revision, cache_dir=cache_dir, token=token,
                            endpoint=endpoint, local_files_only=local_files_only)
    try:
        return hf_hub_download(
            repo_id, name, revision=revision, cache_dir=cache_dir, local_dir=local_dir, token=token,
            endpoint=endpoint, local_files_only=local_files_only, force_download=force_download,
        )
    except LocalEntryNotFoundError as e:
        raise ModelFileError(
            f"{repo_id}/{name} is not in the local Hugging Face cache and downloading is off "
            f"(HF_HUB_OFFLINE or local_files_only) or the Hub cannot be reached: {e}"
        ) from e
    except RepositoryNotFoundError as e:
        raise ModelFileError(f"no repository {repo_id!r} on the Hub (or it is private): {e}") from e
    except RevisionNotFoundError as e:
        raise ModelFileError(f"{repo_id} has no revision {revision!r}") from e
    except EntryNotFoundError as e:
        raise ModelFileError(f"{repo_id} has no file {name!r}") from e
    except HfHubHTTPError as e:
        raise ModelFileError(f"downloading {repo_id}/{name} failed: {e}") from e


def from_pretrained(repo_id: str, filename: str, *, model_class=None, revision: Optional[str] = None,
                    cache_dir=None, local_dir=None, token=None, endpoint: Optional[str] = None,
                    local_files_only: bool = False, force_download: bool = False, **model_kwargs):
    """Model.from_pretrained(repo_id, filename, **kw): download (or reuse the cached)
    GGUF file and load it; model_kwargs go to Model()."""
    if model_class is None:
        from .model import Model as model_class
    path = download(repo_id, filename, revision=revision, cache_dir=cache_dir, local_dir=local_dir,
                    token=token, endpoint=endpoint, local_files_only=local_files_only,
                    force_download=force_download)
    return model_class(path, **model_kwargs)
