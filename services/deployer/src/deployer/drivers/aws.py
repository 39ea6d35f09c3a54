"""The AWS target drivers: EC2 instances for `cloud_vm`, S3 buckets for `storage_bucket`.

They speak the AWS API through boto3, to AWS itself or to an endpoint that imitates it (moto in
the local stack): switching is a matter of `endpoint_url` and credentials. Everything they create
is tagged with the request that created it (`provisioning:request-id`, the ownership mark), and
they only change or remove what carries that tag.

boto3 blocks, so each call runs in a worker thread, bounded by botocore's connect and read
timeouts; each driver call as a whole is bounded by an asyncio timeout, waits included.
"""

from __future__ import annotations

import asyncio
import configparser
import contextlib
import re
import threading
from collections.abc import AsyncIterator
from ipaddress import IPv4Address
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError
from botocore.parsers import ResponseParserError
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from deployer.drivers.base import Deployed, Placement, TargetConflict, TargetUnavailable, marker
from events import PermanentError, RetryableError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import InstanceTypeType
    from mypy_boto3_ec2.type_defs import FilterTypeDef, InstanceTypeDef, TagTypeDef
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import CreateBucketConfigurationTypeDef, ObjectIdentifierTypeDef

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


class VmConfiguration(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    vcpu: int = Field(ge=1)
    ram_gb: int = Field(ge=1)
    image: str
    subnet: str
    private_ip: IPv4Address


class BucketConfiguration(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    versioning: bool = False
    # What the quota counts: S3 itself has no size to set.
    size_gb: int | None = None


# (type, vCPU, GiB), cheapest first: the first that fits is the cheapest that fits.
INSTANCE_TYPES = (
    ("t3.micro", 2, 1),
    ("t3.small", 2, 2),
    ("t3.medium", 2, 4),
    ("t3.large", 2, 8),
    ("t3.xlarge", 4, 16),
    ("t3.2xlarge", 8, 32),
    ("m5.4xlarge", 16, 64),
)


def instance_type_for(vcpu: int, ram_gb: int) -> str:
    """The smallest instance type with at least `vcpu` vCPUs and `ram_gb` GiB of memory."""
    for instance_type, type_vcpu, type_ram_gb in INSTANCE_TYPES:
        if type_vcpu >= vcpu and type_ram_gb >= ram_gb:
            return instance_type
    raise PermanentError(f"no instance type has {vcpu} vCPU and {ram_gb} GiB")


_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
_RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")


def bucket_name_for(prefix: str, tenant: str, name: str) -> str:
    """`<prefix><tenant>-<name>`, lower-case, "_" as "-" (S3 allows no "_"), if S3 accepts it."""
    bucket = f"{prefix}{tenant}-{name}".replace("_", "-").lower()
    if (
        not _BUCKET_NAME.match(bucket)
        or ".." in bucket
        or re.fullmatch(r"\d+\.\d+\.\d+\.\d+", bucket)
        or bucket.startswith(_RESERVED_BUCKET_PREFIXES)
        or bucket.endswith(_RESERVED_BUCKET_SUFFIXES)
    ):
        raise PermanentError(f"{bucket[:80]!r} is not a valid S3 bucket name")
    return bucket


def partition_of(region: str) -> str:
    if region.startswith("cn-"):
        return "aws-cn"
    if region.startswith("us-gov-"):
        return "aws-us-gov"
    return "aws"


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


class Backoff:
    """Sleeps between polls, doubling: quick for moto, gentle for AWS. The call's budget, not
    a count, ends the polling."""

    def __init__(self, first_s: float = 0.05, cap_s: float = 5.0) -> None:
        self._delay_s, self._cap_s = first_s, cap_s

    async def sleep(self) -> None:
        await asyncio.sleep(self._delay_s)
        self._delay_s = min(self._delay_s * 2, self._cap_s)


LIVE_STATES = frozenset({"pending", "running", "stopping", "stopped"})
ENDING_STATES = frozenset({"shutting-down", "terminated"})


def instance_state(instance: InstanceTypeDef) -> str:
    return instance.get("State", {}).get("Name", "unknown")


def attached_groups(instance: InstanceTypeDef) -> set[str]:
    """The instance's security groups: AWS shows them on the instance, moto (when they were
    given with the network interface) only on its primary interface."""
    groups = [*instance.get("SecurityGroups", [])]
    for interface in instance.get("NetworkInterfaces", []):
        if interface.get("Attachment", {}).get("DeviceIndex") in (0, None):
            groups += interface.get("Groups", [])
    return {group.get("GroupId", "") for group in groups} - {""}


def instance_tags(instance: InstanceTypeDef) -> dict[str, str]:
    return {tag.get("Key", ""): tag.get("Value", "") for tag in instance.get("Tags", [])}


class Ec2InstanceDriver:
    """A `cloud_vm` as one EC2 instance with a security group of its own."""

    needs_secret = False

    def __init__(self, target: AwsTarget, *, timeout_s: float) -> None:
        self._target = target
        self._aws = AwsClients(target, timeout_s=timeout_s)

    async def close(self) -> None:
        await self._aws.close()

    async def apply(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> Deployed:
        vm = parse_configuration(VmConfiguration, configuration)
        instance_type = instance_type_for(vm.vcpu, vm.ram_gb)
        tags = resource_tags(placement, vm.name)
        async with self._aws.guarded("EC2 apply"):
            ec2 = await self._aws.ec2()
            subnet_id, vpc_id = await self._subnet(ec2, vm.subnet)
            live, gone = await self._our_instances(ec2, placement)
            group_id = await self._ensure_security_group(ec2, placement, vpc_id, tags)
            if live:
                instance_id = await self._converge(ec2, live[0], vm, instance_type, subnet_id)
                await self._attach_group(ec2, live[0], group_id)
                await asyncio.to_thread(
                    ec2.create_tags,
                    Resources=[instance_id],
                    Tags=[{"Key": key, "Value": value} for key, value in tags.items()],
                )
            else:
                # A token AWS has seen returns the instance it made then, terminated or not:
                # a replacement for a terminated one needs a token of its own.
                token = str(placement.request_id)
                if gone:
                    token += f"-{gone[-1].get('InstanceId', '')}"
                for instance in gone:
                    if instance_state(instance) == "shutting-down":
                        # The address it holds is free once it is terminated.
                        await self._wait(ec2, instance.get("InstanceId", ""), {"terminated"})
                instance_id = await self._launch(
                    ec2, vm, instance_type, subnet_id, group_id, tags, token
                )
            instance = await self._wait(ec2, instance_id, {"running"})
        return Deployed(
            outputs={
                "instance_id": instance_id,
                "private_ip": instance.get("PrivateIpAddress", ""),
                "instance_type": instance.get("InstanceType", ""),
                "subnet_id": subnet_id,
                "security_group_id": group_id,
                "region": self._target.region,
            }
        )

    async def verify(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> list[str]:
        vm = parse_configuration(VmConfiguration, configuration)
        instance_type = instance_type_for(vm.vcpu, vm.ram_gb)
        async with self._aws.guarded("EC2 verify"):
            ec2 = await self._aws.ec2()
            live, _ = await self._our_instances(ec2, placement)
            if not live:
                return ["missing"]
            subnets = await self._subnets_named(ec2, vm.subnet)
            groups = await self._our_security_groups(ec2, placement)
        instance, problems = live[0], []
        if len(live) > 1:
            problems.append(f"{len(live)} instances carry this request's tag, expected 1")
        if instance_state(instance) != "running":
            problems.append(f"the instance is {instance_state(instance)}, not running")
        if instance.get("InstanceType") != instance_type:
            problems.append(
                f"the instance type is {instance.get('InstanceType')}, not {instance_type}"
            )
        subnet_ids = [subnet_id for subnet_id, _ in subnets]
        if instance.get("SubnetId") not in subnet_ids:
            problems.append(
                f"the instance is in {instance.get('SubnetId')}, not subnet {vm.subnet}"
            )
        if instance.get("PrivateIpAddress") != str(vm.private_ip):
            problems.append(
                f"the instance's address is {instance.get('PrivateIpAddress')}, not {vm.private_ip}"
            )
        if not attached_groups(instance) & set(groups):
            problems.append("the instance lacks its security group")
        problems += tag_differences(instance_tags(instance), resource_tags(placement, vm.name))
        return problems

    async def disable(self, placement: Placement, configuration: dict[str, Any]) -> None:
        """Stop the instance: nobody can log in, and its disk stays for a restore (apply)."""
        async with self._aws.guarded("EC2 disable"):
            ec2 = await self._aws.ec2()
            live, _ = await self._our_instances(ec2, placement)
            to_stop = [i.get("InstanceId", "") for i in live if instance_state(i) != "stopped"]
            if to_stop:
                await asyncio.to_thread(ec2.stop_instances, InstanceIds=to_stop)
            for instance_id in to_stop:
                await self._wait(ec2, instance_id, {"stopped"})

    async def remove(self, placement: Placement, configuration: dict[str, Any]) -> None:
        async with self._aws.guarded("EC2 remove"):
            ec2 = await self._aws.ec2()
            live, _ = await self._our_instances(ec2, placement)
            instance_ids = [instance.get("InstanceId", "") for instance in live]
            if instance_ids:
                await asyncio.to_thread(ec2.terminate_instances, InstanceIds=instance_ids)
            for instance_id in instance_ids:
                await self._wait(ec2, instance_id, set(ENDING_STATES))
            for group_id in await self._our_security_groups(ec2, placement):
                await self._delete_security_group(ec2, group_id)

    async def _subnets_named(self, ec2: EC2Client, name: str) -> list[tuple[str, str]]:
        """(subnet id, VPC id) of every subnet tagged Name=`name`."""
        found = await asyncio.to_thread(
            ec2.describe_subnets, Filters=[{"Name": "tag:Name", "Values": [name]}]
        )
        return [
            (subnet.get("SubnetId", ""), subnet.get("VpcId", "")) for subnet in found["Subnets"]
        ]

    async def _subnet(self, ec2: EC2Client, name: str) -> tuple[str, str]:
        subnets = await self._subnets_named(ec2, name)
        if len(subnets) != 1:
            raise PermanentError(f"{len(subnets)} subnets are tagged Name={name}, expected 1")
        return subnets[0]

    async def _our_instances(
        self, ec2: EC2Client, placement: Placement
    ) -> tuple[list[InstanceTypeDef], list[InstanceTypeDef]]:
        """This resource's instances, oldest first: (live ones, terminated ones)."""

        def collect() -> list[InstanceTypeDef]:
            pages = ec2.get_paginator("describe_instances").paginate(
                Filters=ownership_filters(placement)
            )
            return [
                instance
                for page in pages
                for reservation in page["Reservations"]
                for instance in reservation.get("Instances", [])
            ]

        instances = sorted(
            await asyncio.to_thread(collect), key=lambda instance: instance.get("LaunchTime", "")
        )
        live = [instance for instance in instances if instance_state(instance) in LIVE_STATES]
        gone = [instance for instance in instances if instance_state(instance) not in LIVE_STATES]
        return live, gone

    async def _our_security_groups(self, ec2: EC2Client, placement: Placement) -> list[str]:
        found = await asyncio.to_thread(
            ec2.describe_security_groups, Filters=ownership_filters(placement)
        )
        return [group.get("GroupId", "") for group in found["SecurityGroups"]]

    async def _ensure_security_group(
        self, ec2: EC2Client, placement: Placement, vpc_id: str, tags: dict[str, str]
    ) -> str:
        name = f"prov-vm-{placement.resource_id}"
        found = await asyncio.to_thread(
            ec2.describe_security_groups,
            Filters=[
                {"Name": "vpc-id", "Values": [vpc_id]},
                {"Name": "group-name", "Values": [name]},
            ],
        )
        for group in found["SecurityGroups"]:
            group_tags = {tag.get("Key"): tag.get("Value") for tag in group.get("Tags", [])}
            if group_tags.get(TAG_REQUEST) != str(placement.request_id):
                raise TargetConflict(f"security group {name} exists and is not this request's")
            return group.get("GroupId", "")
        created = await asyncio.to_thread(
            ec2.create_security_group,
            GroupName=name,
            Description=marker(placement.request_id),
            VpcId=vpc_id,
            TagSpecifications=[
                {
                    "ResourceType": "security-group",
                    "Tags": [{"Key": key, "Value": value} for key, value in tags.items()],
                }
            ],
        )
        return created["GroupId"]

    async def _launch(
        self,
        ec2: EC2Client,
        vm: VmConfiguration,
        instance_type: str,
        subnet_id: str,
        group_id: str,
        tags: dict[str, str],
        token: str,
    ) -> str:
        tag_list: list[TagTypeDef] = [{"Key": key, "Value": value} for key, value in tags.items()]
        reservation = await asyncio.to_thread(
            ec2.run_instances,
            ImageId=await self._image_id(ec2, vm.image),
            InstanceType=cast("InstanceTypeType", instance_type),
            MinCount=1,
            MaxCount=1,
            # The address belongs to an interface that goes with the instance: spelled out,
            # because moto keeps a terminated instance's address otherwise.
            NetworkInterfaces=[
                {
                    "DeviceIndex": 0,
                    "SubnetId": subnet_id,
                    "PrivateIpAddress": str(vm.private_ip),
                    "Groups": [group_id],
                    "DeleteOnTermination": True,
                }
            ],
            ClientToken=token,
            TagSpecifications=[
                {"ResourceType": "instance", "Tags": tag_list},
                {"ResourceType": "volume", "Tags": tag_list},
            ],
        )
        instance = reservation.get("Instances", [{}])[0]
        if instance_state(instance) not in LIVE_STATES:
            raise PermanentError(
                f"AWS answered with {instance.get('InstanceId')}, {instance_state(instance)},"
                " for this request's idempotency token"
            )
        return instance.get("InstanceId", "")

    async def _image_id(self, ec2: EC2Client, image: str) -> str:
        selector = self._target.images.get(image)
        if selector is None:
            raise PermanentError(f"no image is configured for {image!r}")
        found = await asyncio.to_thread(
            ec2.describe_images,
            Owners=[selector.owner],
            Filters=[
                {"Name": "name", "Values": [selector.name_pattern]},
                {"Name": "architecture", "Values": [selector.architecture]},
                {"Name": "state", "Values": ["available"]},
            ],
        )
        if not found["Images"]:
            raise PermanentError(f"no image {image!r} in {self._target.region}")
        newest = max(found["Images"], key=lambda found: found.get("CreationDate", ""))
        return newest.get("ImageId", "")

    async def _converge(
        self,
        ec2: EC2Client,
        instance: InstanceTypeDef,
        vm: VmConfiguration,
        instance_type: str,
        subnet_id: str,
    ) -> str:
        """Bring our instance to the configuration: running, of `instance_type` (a change
        needs it stopped). Its subnet and address cannot change without a new instance."""
        instance_id = instance.get("InstanceId", "")
        if instance.get("SubnetId") != subnet_id or instance.get("PrivateIpAddress") != str(
            vm.private_ip
        ):
            raise PermanentError(
                f"{instance_id} has another subnet or address; that needs a new instance"
            )
        if instance_state(instance) in {"pending", "stopping"}:
            instance = await self._wait(ec2, instance_id, {"running", "stopped"})
        state = instance_state(instance)
        if instance.get("InstanceType") != instance_type:
            if state == "running":
                await asyncio.to_thread(ec2.stop_instances, InstanceIds=[instance_id])
                await self._wait(ec2, instance_id, {"stopped"})
            await asyncio.to_thread(
                ec2.modify_instance_attribute,
                InstanceId=instance_id,
                InstanceType={"Value": instance_type},
            )
            state = "stopped"
        if state != "running":
            await asyncio.to_thread(ec2.start_instances, InstanceIds=[instance_id])
        return instance_id

    async def _attach_group(self, ec2: EC2Client, instance: InstanceTypeDef, group_id: str) -> None:
        attached = attached_groups(instance)
        if group_id not in attached:
            await asyncio.to_thread(
                ec2.modify_instance_attribute,
                InstanceId=instance.get("InstanceId", ""),
                Groups=[*attached, group_id],
            )

    async def _wait(self, ec2: EC2Client, instance_id: str, states: set[str]) -> InstanceTypeDef:
        """Poll until the instance is in one of `states`; the call's budget bounds the wait."""
        backoff = Backoff()
        while True:
            # A filter, not InstanceIds: a new instance may not be visible yet (eventual
            # consistency), which InstanceIds would answer with an error.
            found = await asyncio.to_thread(
                ec2.describe_instances,
                Filters=[{"Name": "instance-id", "Values": [instance_id]}],
            )
            for reservation in found["Reservations"]:
                for instance in reservation.get("Instances", []):
                    state = instance_state(instance)
                    if state in states:
                        return instance
                    if state in ENDING_STATES and not states & ENDING_STATES:
                        reason = instance.get("StateReason", {}).get("Message", "")
                        raise PermanentError(f"{instance_id} is {state}: {reason[:200]}")
            await backoff.sleep()

    async def _delete_security_group(self, ec2: EC2Client, group_id: str) -> None:
        """Delete the group; AWS refuses while a terminating instance still holds it."""
        backoff = Backoff()
        while True:
            try:
                await asyncio.to_thread(ec2.delete_security_group, GroupId=group_id)
                return
            except ClientError as error:
                if error_code(error) == "InvalidGroup.NotFound":
                    return
                if error_code(error) != "DependencyViolation":
                    raise
            await backoff.sleep()


def ownership_filters(placement: Placement) -> list[FilterTypeDef]:
    return [
        {"Name": f"tag:{TAG_REQUEST}", "Values": [str(placement.request_id)]},
        {"Name": f"tag:{TAG_RESOURCE}", "Values": [str(placement.resource_id)]},
    ]


PUBLIC_ACCESS_BLOCKED = (
    "BlockPublicAcls",
    "IgnorePublicAcls",
    "BlockPublicPolicy",
    "RestrictPublicBuckets",
)


class S3BucketDriver:
    """A `storage_bucket` as one S3 bucket: encrypted, private, versioned on request."""

    needs_secret = False

    def __init__(self, target: AwsTarget, *, timeout_s: float) -> None:
        self._target = target
        self._aws = AwsClients(target, timeout_s=timeout_s)

    async def close(self) -> None:
        await self._aws.close()

    def bucket_name(self, placement: Placement, bucket: BucketConfiguration) -> str:
        return bucket_name_for(self._target.bucket_prefix, placement.tenant, bucket.name)

    async def apply(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> Deployed:
        bucket = parse_configuration(BucketConfiguration, configuration)
        name = self.bucket_name(placement, bucket)
        tags = resource_tags(placement, bucket.name)
        async with self._aws.guarded("S3 apply"):
            s3 = await self._aws.s3()
            found = await self._tags(s3, name)
            if found is None:
                found = await self._create(s3, name, tags)
            if found.get(TAG_REQUEST) != str(placement.request_id):
                raise TargetConflict(f"bucket {name} exists and is not this request's")
            await self._converge(s3, name, bucket, found | tags)
        return Deployed(
            outputs={
                "bucket": name,
                "region": self._target.region,
                "arn": f"arn:{partition_of(self._target.region)}:s3:::{name}",
            }
        )

    async def verify(
        self, placement: Placement, configuration: dict[str, Any], secret: str | None
    ) -> list[str]:
        bucket = parse_configuration(BucketConfiguration, configuration)
        name = self.bucket_name(placement, bucket)
        async with self._aws.guarded("S3 verify"):
            s3 = await self._aws.s3()
            tags = await self._tags(s3, name)
            if tags is None:
                return ["missing"]
            if tags.get(TAG_REQUEST) != str(placement.request_id):
                return [f"bucket {name} is not tagged as this request's"]
            problems = tag_differences(tags, resource_tags(placement, bucket.name))
            problems += await self._encryption_problems(s3, name)
            enabled = await self._versioning_enabled(s3, name)
            if enabled != bucket.versioning:
                expected = "on" if bucket.versioning else "off"
                problems.append(f"versioning is {'on' if enabled else 'off'}, expected {expected}")
            problems += await self._public_access_problems(s3, name)
        return problems

    async def disable(self, placement: Placement, configuration: dict[str, Any]) -> None:
        """Nothing: a bucket in retention keeps its data as it is, and its users' access comes
        from IAM policies outside this driver. A deny-all bucket policy would also lock out
        the deployer's own remove (an explicit deny beats every allow)."""

    async def remove(self, placement: Placement, configuration: dict[str, Any]) -> None:
        """Empty the bucket (every version, delete marker and unfinished upload), then delete
        it; only ours, and nothing when it is gone."""
        bucket = parse_configuration(BucketConfiguration, configuration)
        name = self.bucket_name(placement, bucket)
        async with self._aws.guarded("S3 remove"):
            s3 = await self._aws.s3()
            tags = await self._tags(s3, name)
            if tags is None or tags.get(TAG_REQUEST) != str(placement.request_id):
                return
            await self._empty(s3, name)
            try:
                await asyncio.to_thread(s3.delete_bucket, Bucket=name)
            except ClientError as error:
                if error_code(error) == "BucketNotEmpty":
                    raise TargetUnavailable(
                        f"S3 remove: {name} got objects while emptied"
                    ) from error
                if error_code(error) != "NoSuchBucket":
                    raise

    async def _tags(self, s3: S3Client, name: str) -> dict[str, str] | None:
        """The bucket's tags; None when there is no such bucket, {} when it is another
        account's (S3 answers 403) or has no tags."""
        try:
            await asyncio.to_thread(s3.head_bucket, Bucket=name)
            found = await asyncio.to_thread(s3.get_bucket_tagging, Bucket=name)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if error_code(error) in {"404", "NoSuchBucket", "NotFound"}:
                return None
            if error_code(error) == "NoSuchTagSet" or status == 403:
                return {}
            raise
        return {tag["Key"]: tag["Value"] for tag in found["TagSet"]}

    async def _create(self, s3: S3Client, name: str, tags: dict[str, str]) -> dict[str, str]:
        """Create the bucket and answer its tags. Tags at creation make creating and marking
        one step on AWS; moto ignores them, and `_converge` tags the bucket right after."""
        creation: CreateBucketConfigurationTypeDef = {
            "Tags": [{"Key": key, "Value": value} for key, value in tags.items()]
        }
        if self._target.region != "us-east-1":
            creation["LocationConstraint"] = cast(
                "BucketLocationConstraintType", self._target.region
            )
        try:
            await asyncio.to_thread(
                s3.create_bucket, Bucket=name, CreateBucketConfiguration=creation
            )
        except ClientError as error:
            if error_code(error) == "BucketAlreadyExists":
                raise TargetConflict(f"bucket {name} belongs to someone else") from error
            if error_code(error) != "BucketAlreadyOwnedByYou":
                raise
            # Created in between by a redelivery of this very event, or by someone else.
            return await self._tags(s3, name) or {}
        return tags

    async def _converge(
        self, s3: S3Client, name: str, bucket: BucketConfiguration, tags: dict[str, str]
    ) -> None:
        await asyncio.to_thread(
            s3.put_bucket_tagging,
            Bucket=name,
            Tagging={"TagSet": [{"Key": key, "Value": value} for key, value in tags.items()]},
        )
        await asyncio.to_thread(
            s3.put_bucket_encryption,
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [{"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]
            },
        )
        await asyncio.to_thread(
            s3.put_public_access_block,
            Bucket=name,
            PublicAccessBlockConfiguration={
                "BlockPublicAcls": True,
                "IgnorePublicAcls": True,
                "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True,
            },
        )
        enabled = await self._versioning_enabled(s3, name)
        if enabled != bucket.versioning:
            # A bucket once versioned can only be suspended, never unversioned again.
            await asyncio.to_thread(
                s3.put_bucket_versioning,
                Bucket=name,
                VersioningConfiguration={"Status": "Enabled" if bucket.versioning else "Suspended"},
            )

    async def _versioning_enabled(self, s3: S3Client, name: str) -> bool:
        found = await asyncio.to_thread(s3.get_bucket_versioning, Bucket=name)
        return found.get("Status") == "Enabled"

    async def _encryption_problems(self, s3: S3Client, name: str) -> list[str]:
        try:
            found = await asyncio.to_thread(s3.get_bucket_encryption, Bucket=name)
        except ClientError as error:
            if error_code(error) == "ServerSideEncryptionConfigurationNotFoundError":
                return ["the bucket has no default encryption"]
            raise
        rules = found["ServerSideEncryptionConfiguration"]["Rules"]
        algorithms = {
            rule.get("ApplyServerSideEncryptionByDefault", {}).get("SSEAlgorithm") for rule in rules
        }
        if "AES256" not in algorithms:
            return [f"default encryption is {sorted(map(str, algorithms))}, expected AES256"]
        return []

    async def _public_access_problems(self, s3: S3Client, name: str) -> list[str]:
        try:
            found = await asyncio.to_thread(s3.get_public_access_block, Bucket=name)
        except ClientError as error:
            if error_code(error) == "NoSuchPublicAccessBlockConfiguration":
                return ["public access is not blocked"]
            raise
        settings = found["PublicAccessBlockConfiguration"]
        if not all(settings.get(key) for key in PUBLIC_ACCESS_BLOCKED):
            return ["public access is only partly blocked"]
        return []

    async def _empty(self, s3: S3Client, name: str) -> None:
        """Delete a page at a time until nothing is left: listing afresh after each delete
        is simpler than paginating through what is being deleted."""
        while True:
            page = await asyncio.to_thread(s3.list_object_versions, Bucket=name, MaxKeys=1000)
            doomed: list[ObjectIdentifierTypeDef] = [
                {"Key": item["Key"], "VersionId": item["VersionId"]}
                for item in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]
            ]
            if not doomed:
                break
            for start in range(0, len(doomed), 1000):  # DeleteObjects takes 1000 at most
                done = await asyncio.to_thread(
                    s3.delete_objects,
                    Bucket=name,
                    Delete={"Objects": doomed[start : start + 1000], "Quiet": True},
                )
                if done.get("Errors"):
                    first = done["Errors"][0]
                    raise PermanentError(
                        f"S3 remove: {len(done['Errors'])} objects not deleted,"
                        f" first: {first.get('Code')}"
                    )
        while True:
            uploads = await asyncio.to_thread(s3.list_multipart_uploads, Bucket=name)
            if not uploads.get("Uploads"):
                break
            for upload in uploads["Uploads"]:
                await asyncio.to_thread(
                    s3.abort_multipart_upload,
                    Bucket=name,
                    Key=upload["Key"],
                    UploadId=upload["UploadId"],
                )
