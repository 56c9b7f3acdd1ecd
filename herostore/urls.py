"""Single files and folders by local path or URL: the label files beside a store, the spec's ``.npy`` dicts, exports.

A URL is anything with a scheme (``s3://bucket/root``, ``gs://...``, ``https://host/x``, ``memory://x``) whose
fsspec filesystem package is installed; ``file://`` and plain paths are local. Local files are read and written
with the standard library (writes are atomic: a temp file, then a rename); URLs through fsspec (one PUT per
object, which object stores make visible whole).

Credentials come from ``storage_options`` or the usual environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_ENDPOINT_URL``, a profile...). They never appear in a message: URLs are shown
without a ``user:password@`` part (``display``), and every remote error is one line scrubbed of the credential
values this process knows (``remote_error``).

``open_filesystem`` adds herostore's defaults to the options (``DEFAULT_OPTIONS``, ``S3_CONNECTIONS``): no
listing cache (another process may add or remove a video at any time), and for ``s3://`` a pool of
``S3_CONNECTIONS`` connections per process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .errors import StoreError

__all__ = ["DEFAULT_OPTIONS", "S3_CONNECTIONS", "display", "exists", "is_url", "join", "list_names",
           "local", "open_filesystem", "parent", "read_bytes", "remote_error", "write_bytes"]

PathOrUrl = str | os.PathLike
# Connections one process keeps to an S3 endpoint (botocore's max_pool_connections; its default is 10). A sample
# of the directory store is at most ~12 concurrent GETs, so one sample never waits for a connection.
S3_CONNECTIONS = 16
DEFAULT_OPTIONS: dict[str, Any] = {"use_listings_cache": False}
_SECRET_NAMES = ("secret", "token", "password", "passwd", "credential", "sas", "signature")
_SECRET_ENV = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "GOOGLE_APPLICATION_CREDENTIALS",
               "AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_CONNECTION_STRING")


def is_url(path: PathOrUrl) -> bool:
    """Whether ``path`` names a remote location (``s3://...``, ``https://...``), not a local path."""
    text = os.fspath(path)
    return "://" in text and not text.startswith("file://")


def local(path: PathOrUrl) -> Path:
    """A local path (``file://`` removed)."""
    return Path(os.fspath(path).removeprefix("file://"))


def display(path: PathOrUrl) -> str:
    """``path`` as messages show it: a URL without its ``user:password@`` part."""
    text = os.fspath(path)
    if not is_url(text):
        return text
    try:
        parts = urlsplit(text)
    except ValueError:
        return text.split("://", 1)[0] + "://..."
    if "@" not in parts.netloc:
        return text
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def join(base: PathOrUrl, *names: str) -> Any:
    """``base/name/...``: a ``Path`` for local paths, a string for URLs."""
    if is_url(base):
        return "/".join([os.fspath(base).rstrip("/"), *names])
    return local(base).joinpath(*names)


def parent(path: PathOrUrl) -> Any:
    """The folder holding ``path`` (a ``Path`` or a URL string)."""
    if is_url(path):
        text = os.fspath(path).rstrip("/")
        scheme, rest = text.split("://", 1)
        return f"{scheme}://{rest.rsplit('/', 1)[0]}" if "/" in rest else text
    return local(path).parent


# -- fsspec ------------------------------------------------------------------------------------------------------


def open_filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem of ``url`` (with herostore's defaults) and the path on it, or a ``StoreError``."""
    import fsspec

    options = {**DEFAULT_OPTIONS, **dict(storage_options or {})}
    protocol = url.split("://", 1)[0]
    if protocol in ("s3", "s3a"):
        config = dict(options.get("config_kwargs") or {})
        config.setdefault("max_pool_connections", S3_CONNECTIONS)
        options["config_kwargs"] = config
    try:
        fs, path = fsspec.core.url_to_fs(url, **options)
    except ImportError as exc:
        raise StoreError(f"{display(url)}: cannot open {protocol}:// URLs: a package is missing ({exc})") from None
    except (ValueError, TypeError) as exc:
        raise StoreError(f"{display(url)}: cannot open this URL ({remote_error(exc, options)})") from None
    return fs, path.rstrip("/")


def error_code(exc: BaseException) -> str:
    """The service's error code behind an fsspec error (``NoSuchBucket``, ``SignatureDoesNotMatch``...), or ''."""
    for cause in (exc, exc.__cause__, exc.__context__):
        response = getattr(cause, "response", None)
        if isinstance(response, dict):
            return str((response.get("Error") or {}).get("Code") or "")
    return ""


def is_missing(exc: BaseException) -> bool:
    """Whether ``exc`` says the object is not there (and not that its bucket is missing or access is denied)."""
    code = error_code(exc)
    if code:
        return code in ("NoSuchKey", "404", "NotFound")
    return isinstance(exc, FileNotFoundError) or "NoSuchKey" in str(exc) or "Not Found" in str(exc)


def remote_error(exc: BaseException, storage_options: Mapping[str, Any] | None = None) -> str:
    """``exc`` as one short line, with every credential value this process knows replaced by ``***``."""
    text = str(exc).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    code = error_code(exc)
    if code and code not in text:
        text = f"{code}: {text}"
    for secret in _secrets(storage_options):
        text = text.replace(secret, "***")
    return text[:300]


def describe(exc: BaseException, url: str, action: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """A one-line message for a failed remote ``action`` (``reading zarr.json``): bucket missing, access denied..."""
    code = error_code(exc)
    reason = remote_error(exc, storage_options)
    where = display(url)
    if code == "NoSuchBucket" or (code == "" and "bucket does not exist" in reason.lower()):
        bucket = urlsplit(where).netloc if is_url(where) else where
        return f"{where}: the bucket {bucket!r} does not exist ({reason})"
    if isinstance(exc, PermissionError) or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                                                    "403", "ExpiredToken", "InvalidToken"):
        return (f"{where}: access denied {action} ({reason}); check the credentials (AWS_ACCESS_KEY_ID / "
                f"AWS_SECRET_ACCESS_KEY, a profile, or storage_options) and the endpoint")
    return f"{where}: cannot finish {action} ({type(exc).__name__}: {reason})"


def remote_errors() -> tuple[type[BaseException], ...]:
    """What an fsspec call on a remote filesystem can raise for a remote problem (not a herostore bug)."""
    found: list[type[BaseException]] = [OSError]
    with contextlib.suppress(ImportError):
        from botocore.exceptions import BotoCoreError

        found.append(BotoCoreError)
    with contextlib.suppress(ImportError):
        from aiohttp import ClientError

        found.append(ClientError)
    return tuple(found)


def _secrets(storage_options: Mapping[str, Any] | None) -> list[str]:
    found = []

    def visit(options: Any) -> None:
        if isinstance(options, Mapping):
            for name, value in options.items():
                if isinstance(value, Mapping):
                    visit(value)
                elif isinstance(value, str) and len(value) >= 4 and any(s in str(name).lower()
                                                                        for s in _SECRET_NAMES):
                    found.append(value)

    visit(storage_options or {})
    found += [os.environ[name] for name in _SECRET_ENV if len(os.environ.get(name, "")) >= 4]
    return sorted(set(found), key=len, reverse=True)


# -- whole files -------------------------------------------------------------------------------------------------


def read_bytes(path: PathOrUrl, storage_options: Mapping[str, Any] | None = None) -> bytes:
    """The bytes of a file; ``FileNotFoundError`` if there is none, a ``StoreError`` for other remote problems."""
    if not is_url(path):
        return local(path).read_bytes()
    url = os.fspath(path)
    fs, remote = open_filesystem(url, storage_options)
    kwargs = {"max_concurrency": 1} if hasattr(fs, "max_concurrency") else {}  # s3fs: no HEAD before the GET
    try:
        return fs.cat_file(remote, **kwargs)
    except remote_errors() as exc:
        if is_missing(exc):
            raise FileNotFoundError(2, "No such file", display(url)) from None
        raise StoreError(describe(exc, url, "reading", storage_options)) from None


def write_bytes(path: PathOrUrl, data: bytes, storage_options: Mapping[str, Any] | None = None) -> None:
    """Replace a file with ``data`` whole: atomically and durably locally, one PUT remotely."""
    if not is_url(path):
        from .fsutil import atomic_write

        atomic_write(local(path), data)
        return
    url = os.fspath(path)
    fs, remote = open_filesystem(url, storage_options)
    try:
        fs.pipe_file(remote, data)
    except remote_errors() as exc:
        raise StoreError(describe(exc, url, "writing", storage_options)) from None


def exists(path: PathOrUrl, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether a file (an object) is there."""
    if not is_url(path):
        return local(path).is_file()
    url = os.fspath(path)
    fs, remote = open_filesystem(url, storage_options)
    try:
        return object_exists(fs, remote)
    except remote_errors() as exc:
        raise StoreError(describe(exc, url, "looking for a file", storage_options)) from None


def object_exists(fs: Any, path: str) -> bool:
    """Whether an object is there, in one request: its first byte. (s3fs answers ``exists`` for a missing key with
    a HEAD and then a listing.) Raises what the filesystem raises for other problems."""
    try:
        fs.cat_file(path, start=0, end=1)
    except remote_errors() as exc:
        if error_code(exc) == "InvalidRange":  # an empty object
            return True
        if is_missing(exc) or isinstance(exc, (IsADirectoryError, NotADirectoryError)):
            return False
        raise
    return True


def list_names(folder: PathOrUrl, suffix: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """Names of the files directly in ``folder`` ending in ``suffix`` (not hidden), sorted."""
    if not is_url(folder):
        with os.scandir(local(folder)) as entries:
            return sorted(e.name for e in entries
                          if e.name.endswith(suffix) and not e.name.startswith(".") and e.is_file())
    url = os.fspath(folder)
    fs, remote = open_filesystem(url, storage_options)
    try:
        found = fs.ls(remote, detail=True)
    except remote_errors() as exc:
        if isinstance(exc, FileNotFoundError) and error_code(exc) != "NoSuchBucket":
            return []
        raise StoreError(describe(exc, url, "listing", storage_options)) from None
    names = [entry["name"].rstrip("/").rsplit("/", 1)[-1] for entry in found if entry.get("type") == "file"]
    return sorted(n for n in names if n.endswith(suffix) and not n.startswith("."))

