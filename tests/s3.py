"""Fixtures for object-storage tests: a local S3-protocol server (moto's, on 127.0.0.1) for the session, a fresh
bucket per test, and the standard AWS environment pointing at it. See ``herostore.testing.s3``.

The server starts only when a test asks for it and stops at the end of the session.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from herostore.testing.s3 import LocalS3Server


@pytest.fixture(scope="session")
def s3_server():
    """The session's local S3 server (request log, PUT holds, credential checks on demand)."""
    server = LocalS3Server().start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """A new, empty bucket, removed after the test."""
    name = s3_server.create_bucket()
    yield name
    s3_server.remove_bucket(name)


@pytest.fixture
def s3_env(s3_server, monkeypatch, tmp_path: Path) -> LocalS3Server:
    """Credentials and endpoint the usual way (``AWS_*`` variables), no AWS files of this machine in the way."""
    import s3fs

    for name, value in s3_server.environ().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    s3fs.S3FileSystem.clear_instance_cache()  # instances made under other variables must not be reused
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()
