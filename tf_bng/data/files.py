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
    """``$TF_BNG_DATA_DIR`` if set, else ``~/tf_bng_data``: where file datasets live."""
    return os.environ.get("TF_BNG_DATA_DIR") or os.path.join(os.path.expanduser("~"), "tf_bng_data")


def data_dir_of(config: Any) -> str:
    """The data directory of a dataset's options, ``~`` expanded.

    Args:
        config: The dataset options; its ``data_dir`` wins over :func:`default_data_dir`.

    Returns:
        The directory (it need not exist).
    """
    return os.path.expanduser(str(get_option(config, "data_dir", "") or default_data_dir()))


def find_directory(root: str, candidates: Sequence[str], required: Iterable[str]) -> str | None:
    """The first ``root/candidate`` that holds every file of ``required``.

    Args:
        root: The data directory.
        candidates: Subdirectory names to try in order (an archive's own layout, the
            layout users are told to make); ``""`` is ``root`` itself.
        required: File names that must all be in the directory.

    Returns:
        The directory, or None if no candidate holds them all.
    """
    required = tuple(required)
    for candidate in candidates:
        directory = os.path.join(root, candidate)
        if all(os.path.isfile(os.path.join(directory, name)) for name in required):
            return directory
    return None


def fetch_archive(url: str, destination: str, *, timeout: float = 60.0) -> None:
    """Download a .tar.gz archive from ``url`` and extract it into ``destination``.

    Args:
        url: The archive's address.
        destination: The directory to extract into (created if absent); the download
            goes to a scratch directory inside it, removed afterwards.
        timeout: Seconds to wait for the server.

    Raises:
        ValueError: If a member of the archive would be extracted outside ``destination``.
        OSError: If the download or the extraction fails (``urllib.error.URLError`` is
            one).
    """
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

    Args:
        config: The dataset options: ``data_dir``, ``download`` and ``url`` (which
            overrides ``default_url``).
        candidates: Subdirectories of the data directory to look in, in order.
        required: File names that must all be there.
        default_url: The archive to fetch when ``download`` is True.
        advice: What to download and where to put it; ``{root}`` is replaced by the data
            directory.

    Returns:
        The directory holding every file of ``required``.

    Raises:
        DataUnavailableError: If the files are not there (after the download, if
            asked); the message names the places searched, then ``advice``.
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
