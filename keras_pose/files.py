"""File helpers shared by the zoo and the trunk weight cache (no keras_pose imports).

- :func:`sha256`: the one checksum of the package (zoo weights, trunk checkpoints);
- :func:`cache_dir`: the user's cache, ``$KERAS_HOME/keras_pose``;
- :func:`download`: a URL to a file, all or nothing: the bytes go to a
  temporary file beside the target, are counted against the server's
  ``Content-Length`` and checked against a SHA-256, and only then moved into
  place (``os.replace``), so an interrupted or truncated download or a wrong
  checksum leaves no file behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path


def sha256(path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_dir() -> Path:
    """``$KERAS_HOME/keras_pose`` (``~/.keras/keras_pose`` by default)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(home) / "keras_pose"


class DownloadError(OSError):
    """A download that did not complete (no connection, an HTTP error, fewer bytes than announced)."""


def download(url: str, dest, expected_sha256: str, timeout: float = 60.0, progress: bool | None = None) -> Path:
    """Download ``url`` to ``dest`` if and only if its content has SHA-256 ``expected_sha256``.

    Args:
        url: the file's address (``http(s)://`` or ``file://``).
        dest: the target file; its folder is created.
        expected_sha256: hex SHA-256 the content must have.
        timeout: seconds to wait for the server before giving up.
        progress: show a tqdm progress bar on stderr; None (default): only
            when stderr is a terminal.

    Returns:
        ``dest``.

    Raises:
        DownloadError: the server could not be reached, answered with an
            error, or sent fewer bytes than its ``Content-Length``.
        ValueError: the content's SHA-256 is not ``expected_sha256``.

    In every failure the target is left as it was and the temporary file is
    removed.
    """
    from tqdm import tqdm

    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    h, received, total = hashlib.sha256(), 0, None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                              disable=None if progress is None else not progress) as bar:
                        for chunk in iter(lambda: response.read(1 << 20), b""):
                            out.write(chunk)
                            h.update(chunk)
                            received += len(chunk)
                            bar.update(len(chunk))
            except urllib.error.HTTPError as e:
                raise DownloadError(f"download of {url} failed: HTTP {e.code} {e.reason}") from e
            except urllib.error.URLError as e:
                raise DownloadError(f"download of {url} failed: {e.reason}") from e
            except (http.client.HTTPException, OSError) as e:  # IncompleteRead, a reset connection, a time-out
                raise DownloadError(f"download of {url} failed after {received} bytes: {e!r}") from e
        if total is not None and received != total:
            raise DownloadError(f"download of {url} was cut short: {received} of {total} bytes received")
        digest = h.hexdigest()
        if digest != expected_sha256:
            raise ValueError(f"download of {url} has SHA-256 {digest[:12]}..., expected {expected_sha256[:12]}...; "
                             f"the file was not kept (not written to {dest})")
        os.replace(tmp, dest)
    except BaseException:  # KeyboardInterrupt included: never leave a partial file
        Path(tmp).unlink(missing_ok=True)
        raise
    return dest


__all__ = ["DownloadError", "cache_dir", "download", "sha256"]
