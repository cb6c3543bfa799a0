"""S3 and KMS for tests: moto's server on a free loopback port, with test credentials in the environment.

Use as a plugin: `pytest_plugins = ["tests.s3_server"]` (in the top-level conftest, or in a test module).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_EC2_METADATA_DISABLED": "true",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}
CLEARED = ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL", "ADS_S3_KMS_KEY_ID")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """The URL of a moto server (S3, KMS, …) for the session; the code under test finds it via ADS_S3_ENDPOINT_URL."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    with pytest.MonkeyPatch.context() as patch:
        for variable in CLEARED:
            patch.delenv(variable, raising=False)
        for variable, value in TEST_ENVIRONMENT.items():
            patch.setenv(variable, value)
        patch.setenv("ADS_S3_ENDPOINT_URL", endpoint)
        try:
            yield endpoint
        finally:
            server.stop()


@pytest.fixture
def s3(s3_endpoint: str) -> Any:
    """A boto3 S3 client on the moto server."""
    import boto3

    return boto3.client("s3", endpoint_url=s3_endpoint, region_name=REGION)


@pytest.fixture
def s3_bucket(s3: Any) -> str:
    """A new, empty bucket for one test."""
    name = f"ads-test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def kms_key_id(s3_endpoint: str) -> str:
    """A new KMS key on the moto server."""
    import boto3

    kms = boto3.client("kms", endpoint_url=s3_endpoint, region_name=REGION)
    return kms.create_key(Description="ADS test models")["KeyMetadata"]["KeyId"]
