"""Where file-based datasets live, and fetching their archives when asked to.

``data.data_dir`` wins; otherwise ``$TF_BNG_DATA_DIR``; otherwise
``~/tf_bng_data``. Nothing is downloaded unless ``data.download`` is True.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import urllib.request
from collections.abc import Iterable, Sequence
from typing import Any

from tf_bng.data.options import get_option
from tf_bng.errors import DataUnavailableError

__all__ = ["default_data_dir", "data_dir_of", "find_directory", "fetch_archive", "locate"]


def default_data_dir() -> str:
    return os.environ.get("TF_BNG_DATA_DIR") or os.path.join(os.path.expanduser("~"), "tf_bng_data")


def data_dir_of(config: Any) -> str:
    return os.path.expanduser(str(get_option(config, "data_dir", "") or default_data_dir()))


def find_directory(root: str, candidates: Sequence[str], required: Iterable[str]) -> str | None:
    """The first ``root/candidate`` that holds every file of ``required``."""
    required = tuple(required)
    for candidate in candidates:
        directory = os.path.join(root, candidate)
        if all(os.path.isfile(os.path.join(directory, name)) for name in required):
            return directory
    return None


def fetch_archive(url: str, destination: str, *, timeout: float = 60.0) -> None:
    """Download a .tar.gz archive from ``url`` and extract it into ``destination``."""
    os.makedirs(destination, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=destination) as scratch:
        archive = os.path.join(scratch, "archive.tar.gz")
        with urllib.request.urlopen(url, timeout=timeout) as response, open(archive, "wb") as out:
            shutil.copyfileobj(response, out)
        with tarfile.open(archive, "r:*") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(destination, filter="data")
            else:  # Python < 3.11.4: refuse members that escape destination
                root = os.path.realpath(destination)
                for member in tar.getmembers():
                    target = os.path.realpath(os.path.join(destination, member.name))
                    if os.path.commonpath([root, target]) != root:
                        raise ValueError(f"Unsafe path in archive {url}: {member.name}")
                tar.extractall(destination)


def locate(
    config: Any,
    *,
    candidates: Sequence[str],
    required: Sequence[str],
    default_url: str,
    advice: str,
) -> str:
    """The directory under ``data_dir`` holding ``required``; fetched if ``data.download``.

    Raises :class:`DataUnavailableError` naming the places searched, followed
    by ``advice`` (what to download and where to put it).
    """
    root = data_dir_of(config)
    directory = find_directory(root, candidates, required)
    if directory is None and get_option(config, "download", False):
        fetch_archive(str(get_option(config, "url", default_url)), root)
        directory = find_directory(root, candidates, required)
    if directory is None:
        searched = ", ".join(os.path.join(root, c) for c in candidates)
        raise DataUnavailableError(
            f"Looked for {', '.join(required)} in {searched}: not found. "
            + advice.format(root=root)
            + " Or set data.data_dir, or run with data.download=True."
        )
    return directory
