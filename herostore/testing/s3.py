"""A local S3-protocol server for the tests and the benchmarks: moto's server on 127.0.0.1, counting requests.

``LocalS3Server.start()`` runs ``python -m herostore.testing.s3`` in a subprocess: moto's S3 application (the one
``moto_server`` serves) behind a small WSGI layer, on a free port of 127.0.0.1. It waits until the server answers,
creates a user with a generated key pair, and gives the endpoint, ``storage_options`` and the ``AWS_*`` environment
of that user. The layer in front of moto:

- logs every S3 request (method, path, query, status, bytes in and out), so a test or a benchmark counts what a
  sample costs (``log()``, ``reset_log()``), whichever process sent the requests;
- holds PUTs after a given number (``hold_puts(after=N)``), so a test can kill a writer in the middle of an
  upload; ``release(drop=True)`` then answers the held requests with an error (400, which clients do not
  retry) and stores nothing;
- checks credentials only inside ``enforce_auth()``: moto compares signatures only when its IAM checks are on,
  and those also refuse some good listings (requests with a ``prefix`` parameter), so they are on only for the
  tests of bad credentials.

Nothing here is used by the library.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Self

__all__ = ["LocalS3Server", "Request"]

CONTROL = "/_herostore"  # never an S3 path: bucket names cannot start with "_"
START_TIMEOUT_S = 60.0
HOLD_LIMIT_S = 120.0  # a held request is answered with an error after this long, released or not
REGION = "us-east-1"


@dataclass(frozen=True)
class Request:
    """One S3 request the server answered."""

    method: str
    path: str  # /bucket/key, percent-decoded
    query: str
    status: int
    bytes_in: int
    bytes_out: int

    @property
    def bucket(self) -> str:
        return self.path.lstrip("/").split("/", 1)[0]

    @property
    def key(self) -> str:
        parts = self.path.lstrip("/").split("/", 1)
        return parts[1] if len(parts) == 2 else ""


class LocalS3Server:
    """moto's S3 server in a subprocess on 127.0.0.1; ``start()``, use, ``stop()`` (or ``with``)."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.endpoint = ""
        self.key = ""
        self.secret = ""

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalS3Server:
        """Start the server, wait until it answers, create the user whose keys the clients use."""
        self.process = subprocess.Popen([sys.executable, "-m", "herostore.testing.s3"], stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True, env={**os.environ, "AWS_REGION": REGION})
        line = _read_line(self.process, START_TIMEOUT_S)
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"the local S3 server did not start (it printed {line!r})")
        self.endpoint = f"http://127.0.0.1:{int(line)}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            try:
                self._control("GET", "log")
                break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"the local S3 server at {self.endpoint} does not answer") from None
                time.sleep(0.05)
        self.key, self.secret = self._create_user()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process is not None and self.process.stdout is not None:
            self.process.stdout.close()
        self.process = None

    # -- what clients need ---------------------------------------------------------------------------------------

    def storage_options(self, **extra: Any) -> dict[str, Any]:
        """fsspec/s3fs options for this server and user."""
        return {"endpoint_url": self.endpoint, "key": self.key, "secret": self.secret, **extra}

    def environ(self) -> dict[str, str]:
        """The standard AWS environment variables for this server and user (for subprocesses and the CLI)."""
        return {"AWS_ACCESS_KEY_ID": self.key, "AWS_SECRET_ACCESS_KEY": self.secret,
                "AWS_ENDPOINT_URL": self.endpoint, "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}

    def filesystem(self) -> Any:
        """A fresh ``s3fs.S3FileSystem`` on this server (no listing cache)."""
        import s3fs

        return s3fs.S3FileSystem(**self.storage_options(), skip_instance_cache=True, use_listings_cache=False)

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        self.filesystem().mkdir(name)
        return name

    def remove_bucket(self, name: str) -> None:
        fs = self.filesystem()
        with contextlib.suppress(FileNotFoundError):
            fs.rm(name, recursive=True)
        with contextlib.suppress(FileNotFoundError, OSError):
            fs.rmdir(name)

    # -- counting, holding, checking credentials -----------------------------------------------------------------

    def log(self) -> list[Request]:
        """Every S3 request since the last ``reset_log``, in the order the server finished them."""
        return [Request(**entry) for entry in json.loads(self._control("GET", "log"))]

    def reset_log(self) -> None:
        self._control("POST", "reset")

    def hold_puts(self, after: int = 0, prefix: str = "") -> None:
        """Hold every PUT to a path starting with ``prefix`` (``/bucket/...``) after ``after`` more of them."""
        self._control("POST", "hold", {"after": after, "prefix": prefix})

    def held(self) -> int:
        """How many requests are being held now."""
        return int(json.loads(self._control("GET", "held")))

    def release(self, drop: bool = True) -> None:
        """Stop holding; held requests get an error and store nothing (``drop``) or go through."""
        self._control("POST", "release", {"drop": drop})

    @contextlib.contextmanager
    def enforce_auth(self) -> Iterator[None]:
        """Within the block the server checks every request's signature against the user's keys."""
        self._moto_auth(b"0")
        try:
            yield
        finally:
            self._moto_auth(b"inf")

    def _moto_auth(self, count: bytes) -> None:
        request = urllib.request.Request(f"{self.endpoint}/moto-api/reset-auth", data=count, method="POST",
                                         headers={"Content-Type": "text/plain"})
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()

    def _control(self, method: str, action: str, body: dict[str, Any] | None = None) -> bytes:
        data = json.dumps(body or {}).encode() if method == "POST" else None
        request = urllib.request.Request(f"{self.endpoint}{CONTROL}/{action}", data=data, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.read()

    def _create_user(self) -> tuple[str, str]:
        import boto3

        iam = boto3.client("iam", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id="setup",
                           aws_secret_access_key="setup")
        iam.create_user(UserName="herostore-test")
        created = iam.create_access_key(UserName="herostore-test")["AccessKey"]
        policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
        iam.put_user_policy(UserName="herostore-test", PolicyName="all", PolicyDocument=json.dumps(policy))
        return created["AccessKeyId"], created["SecretAccessKey"]


def _read_line(process: subprocess.Popen, timeout: float) -> str:
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0] if out else ""


# -- the server process ------------------------------------------------------------------------------------------


class _Recorder:
    """The WSGI layer in front of moto: the request log, the hold on PUTs, the control paths."""

    def __init__(self, app: Any):
        self.app = app
        self.lock = threading.Lock()
        self.entries: list[dict[str, Any]] = []
        self.hold_after: int | None = None
        self.hold_prefix = ""
        self.holding = 0
        self.released = threading.Event()
        self.drop = True

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path.startswith(CONTROL + "/"):
            return self._control(path[len(CONTROL) + 1 :], environ, start_response)
        if environ["REQUEST_METHOD"] == "PUT" and self._should_hold(path) and not self._wait_held():
            return _respond(start_response, "400 Bad Request", b"held and dropped by the test server")
        return self._forward(path, environ, start_response)

    def _forward(self, path: str, environ: dict[str, Any], start_response: Any) -> Any:
        """moto's answer, logged before it is sent (so a client that got it finds it in the log)."""
        status: list[int] = [0]
        started: list[Any] = []

        def deferred_start(status_line: str, headers: Any, *rest: Any) -> None:
            status[0] = int(status_line.split()[0])
            started[:] = [status_line, headers, *rest]

        body = list(self.app(environ, deferred_start))  # moto answers from memory: nothing is streamed
        entry = {"method": environ["REQUEST_METHOD"], "path": path, "query": environ.get("QUERY_STRING", ""),
                 "status": status[0], "bytes_in": int(environ.get("CONTENT_LENGTH") or 0),
                 "bytes_out": sum(len(piece) for piece in body)}
        with self.lock:
            self.entries.append(entry)
        start_response(*started)
        return body

    def _should_hold(self, path: str) -> bool:
        with self.lock:
            if self.hold_after is None or not path.startswith(self.hold_prefix):
                return False
            if self.hold_after > 0:
                self.hold_after -= 1
                return False
            self.holding += 1
            return True

    def _wait_held(self) -> bool:
        """Wait until released; True if the request then goes through."""
        released = self.released.wait(HOLD_LIMIT_S)
        with self.lock:
            self.holding -= 1
            return released and not self.drop

    def _control(self, action: str, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0)) if environ.get(
            "CONTENT_LENGTH") else b""
        options = json.loads(body or b"{}")
        with self.lock:
            if action == "log":
                payload = json.dumps(self.entries).encode()
            elif action == "reset":
                self.entries = []
                payload = b"{}"
            elif action == "hold":
                self.hold_after, self.hold_prefix = int(options.get("after", 0)), str(options.get("prefix", ""))
                self.released.clear()
                payload = b"{}"
            elif action == "held":
                payload = str(self.holding).encode()
            elif action == "release":
                self.hold_after = None
                self.drop = bool(options.get("drop", True))
                self.released.set()
                payload = b"{}"
            else:
                return _respond(start_response, "404 Not Found", f"unknown control {action!r}".encode())
        return _respond(start_response, "200 OK", payload)


def _respond(start_response: Any, status: str, payload: bytes) -> list[bytes]:
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))])
    return [payload]


def serve() -> None:
    """Serve moto's application behind ``_Recorder`` on a free port of 127.0.0.1; print the port first."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from werkzeug.serving import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_request(self, *args: Any, **kwargs: Any) -> None:
            pass

    app = _Recorder(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=QuietHandler)
    print(server.server_port, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    serve()
