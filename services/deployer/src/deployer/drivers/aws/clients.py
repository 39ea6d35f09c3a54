"""What the EC2 and S3 drivers share: the target and its boto3 clients, the ownership tags,
and how AWS's answers become the deployer's errors."""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deployer.drivers.base import Placement, TargetUnavailable
from events import PermanentError, RetryableError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_s3 import S3Client

TAG_REQUEST = "provisioning:request-id"
TAG_RESOURCE = "provisioning:resource-id"
TAG_OWNER = "provisioning:owner"
TAG_TENANT = "provisioning:tenant"

# A driver call may take this many `timeout_s`: several API calls and a wait for a state.
BUDGET_FACTOR = 3
# Codes that say "not now" rather than "no" (throttling, AWS-side trouble).
PASSING_ERROR_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "SlowDown",
        "ServiceUnavailable",
        "Unavailable",
        "InternalError",
        "InternalFailure",
        "RequestTimeout",
        "OperationAborted",
        "InsufficientInstanceCapacity",
        # An instance between states (stopping a pending one): it settles by the next attempt.
        "IncorrectInstanceState",
    }
)


class ImageSelector(BaseModel):
    """The newest available image an owner publishes under a name pattern.

    AMI ids differ per region and change with every release; owner and name are how Debian and
    Canonical tell users to find theirs, and devstack.cloud seeds moto with the same ones."""

    model_config = ConfigDict(frozen=True)

    owner: str
    name_pattern: str
    architecture: str = "x86_64"


PUBLIC_IMAGES = {
    "debian-12": ImageSelector(owner="136693071363", name_pattern="debian-12-amd64-*"),
    "ubuntu-24.04": ImageSelector(
        owner="099720109477",
        name_pattern="ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
    ),
}


class AwsTarget(BaseModel):
    """Where the AWS API is and how the deployer signs in to it."""

    model_config = ConfigDict(frozen=True)

    # None: AWS itself.
    endpoint_url: str | None = None
    region: str
    # Both None: boto3's default chain (an instance profile, a web identity token, ...).
    access_key_id: str | None = None
    secret_access_key_file: Path | None = None
    bucket_prefix: str = "prov-"
    images: dict[str, ImageSelector] = Field(default_factory=lambda: dict(PUBLIC_IMAGES))

    @model_validator(mode="after")
    def _key_pair_is_complete(self) -> AwsTarget:
        if (self.access_key_id is None) != (self.secret_access_key_file is None):
            raise ValueError("access_key_id and secret_access_key_file go together")
        return self


def resource_tags(placement: Placement, name: str) -> dict[str, str]:
    return {
        "Name": name,
        TAG_REQUEST: str(placement.request_id),
        TAG_RESOURCE: str(placement.resource_id),
        TAG_OWNER: placement.owner,
        TAG_TENANT: placement.tenant,
    }


def tag_differences(actual: dict[str, str], expected: dict[str, str]) -> list[str]:
    return [
        f"tag {key} is {actual.get(key)!r}, expected {value!r}"
        for key, value in expected.items()
        if actual.get(key) != value
    ]


def read_secret_access_key(path: Path) -> str:
    """The secret in `path`: the key alone, or an AWS shared credentials file's [default]."""
    try:
        text = path.read_text()
    except OSError as error:
        raise PermanentError(f"cannot read {path}: {error.strerror}") from None
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text)
    except configparser.MissingSectionHeaderError:
        return text.strip()
    except configparser.Error:
        # `from None`: configparser's messages quote the offending line, which may be the secret.
        raise PermanentError(f"{path} is neither a key nor a credentials file") from None
    secret = parser.get("default", "aws_secret_access_key", fallback="").strip()
    if not secret:
        raise PermanentError(f"{path} has no aws_secret_access_key in [default]")
    return secret


ModelT = TypeVar("ModelT", bound=BaseModel)


def parse_configuration(model: type[ModelT], configuration: dict[str, Any]) -> ModelT:
    try:
        return model.model_validate(configuration)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise PermanentError(f"invalid {model.__name__}: {where}: {first['msg']}") from None


def error_code(error: ClientError) -> str:
    return error.response.get("Error", {}).get("Code", "")


def translate_client_error(error: ClientError, what: str) -> TargetUnavailable | PermanentError:
    code = error_code(error)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
    if status >= 500 or code in PASSING_ERROR_CODES:
        return TargetUnavailable(f"{what}: {code or 'HTTP'} {status}")
    message = error.response.get("Error", {}).get("Message", "")
    return PermanentError(f"{what}: {code}: {message[:200]}")


class AwsClients:
    """The boto3 clients of one target, built on first use (that reads the secret and loads
    service models, which blocks) and shared: boto3 clients are thread-safe."""

    def __init__(self, target: AwsTarget, *, timeout_s: float) -> None:
        self.target = target
        self.budget_s = timeout_s * BUDGET_FACTOR
        self._config = Config(
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
            retries={"mode": "standard", "max_attempts": 2},
            # Virtual-host addressing needs DNS for every bucket, which local endpoints lack.
            s3={"addressing_style": "path"} if target.endpoint_url else {},
        )
        self._lock = threading.Lock()
        self._session: boto3.session.Session | None = None
        self._ec2: EC2Client | None = None
        self._s3: S3Client | None = None

    async def ec2(self) -> EC2Client:
        if self._ec2 is None:
            self._ec2 = await asyncio.to_thread(self._build_ec2)
        return self._ec2

    async def s3(self) -> S3Client:
        if self._s3 is None:
            self._s3 = await asyncio.to_thread(self._build_s3)
        return self._s3

    async def close(self) -> None:
        clients = [client for client in (self._ec2, self._s3) if client is not None]
        self._ec2 = self._s3 = None
        for client in clients:
            await asyncio.to_thread(client.close)

    @contextlib.asynccontextmanager
    async def guarded(self, what: str) -> AsyncIterator[None]:
        """Bound the block by the call's budget and turn AWS failures into the deployer's
        errors: what may pass is `TargetUnavailable`, what will not is a `PermanentError`."""
        try:
            async with asyncio.timeout(self.budget_s):
                yield
        except (PermanentError, RetryableError):
            raise
        except TimeoutError as error:
            raise TargetUnavailable(f"{what}: not done within {self.budget_s:g} s") from error
        except ClientError as error:
            raise translate_client_error(error, what) from error
        # An unparsable answer is a proxy's or a crashed server's error page.
        except (HTTPClientError, BotoConnectionError, ResponseParserError, OSError) as error:
            raise TargetUnavailable(f"{what}: {str(error)[:200]}") from error
        except BotoCoreError as error:
            raise PermanentError(f"{what}: {str(error)[:200]}") from error

    def _boto_session(self) -> boto3.session.Session:
        with self._lock:
            if self._session is None:
                target = self.target
                secret = None
                if target.secret_access_key_file is not None:
                    secret = read_secret_access_key(target.secret_access_key_file)
                self._session = boto3.session.Session(
                    aws_access_key_id=target.access_key_id,
                    aws_secret_access_key=secret,
                    region_name=target.region,
                )
            return self._session

    def _build_ec2(self) -> EC2Client:
        return self._boto_session().client(
            "ec2", endpoint_url=self.target.endpoint_url, config=self._config
        )

    def _build_s3(self) -> S3Client:
        return self._boto_session().client(
            "s3", endpoint_url=self.target.endpoint_url, config=self._config
        )
