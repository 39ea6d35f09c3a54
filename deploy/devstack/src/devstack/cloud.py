"""A local AWS-compatible endpoint (moto in server mode), set up as an AWS account would be.

moto keeps its state in memory: a restart starts from the bootstrap again, which suits a local
stack. What the account already has is created idempotently after every start: the "lab" VPC and
subnet, and the public Debian and Ubuntu images under their publishers' real owner ids and naming
schemes, so the deployer finds them with the same selectors it uses against real AWS.
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
import string
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from apikeys.bootstrap import write_private
from devstack.config import StackConfig
from devstack.proc import StackError, live_pid, start_process, stop_pid_files, wait_until_ready

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import ResourceTypeType
    from mypy_boto3_ec2.type_defs import FilterTypeDef, TagSpecificationTypeDef

REGION = "eu-west-1"
MODULE = "moto.server"
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0

LAB = "lab"
LAB_VPC_CIDR = "10.20.0.0/16"
LAB_SUBNET_CIDR = "10.20.0.0/24"

DEBIAN_OWNER = "136693071363"
CANONICAL_OWNER = "099720109477"
# (AMI id, owner, name) as the publishers name their images; the deployer picks by owner and name.
PUBLIC_IMAGES = (
    ("ami-0de812a0c0ffee001", DEBIAN_OWNER, "debian-12-amd64-20250101-1900"),
    (
        "ami-0ab24040c0ffee001",
        CANONICAL_OWNER,
        "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250101",
    ),
)
# What the deployer's default image selectors look for; checked after every start.
IMAGE_NAME_PATTERNS = {
    DEBIAN_OWNER: "debian-12-amd64-*",
    CANONICAL_OWNER: "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-*",
}


def endpoint_url(config: StackConfig) -> str:
    return f"http://127.0.0.1:{config.cloud_port}"


def secret_key_file(config: StackConfig) -> Path:
    return config.secrets_dir / "aws-credentials"


def credentials(config: StackConfig) -> tuple[str, str]:
    """The access key id and secret access key, generated once and kept in an AWS shared
    credentials file (profile `default`, mode 600). moto accepts any pair; a generated one keeps
    the deployer reading its secret from a file, as it will in production."""
    path = secret_key_file(config)
    if path.exists():
        parser = configparser.ConfigParser(interpolation=None)
        parser.read(path)
        profile = parser["default"] if parser.has_section("default") else None
        if profile and profile.get("aws_access_key_id") and profile.get("aws_secret_access_key"):
            return profile["aws_access_key_id"], profile["aws_secret_access_key"]
        raise StackError(f"{path} has no [default] key pair; delete it to get a new one")
    key_id = "AKIA" + "".join(secrets.choice(string.ascii_uppercase + "234567") for _ in range(16))
    secret = secrets.token_urlsafe(30)
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    config.secrets_dir.chmod(0o700)
    write_private(
        path, f"[default]\naws_access_key_id = {key_id}\naws_secret_access_key = {secret}"
    )
    return key_id, secret


def running_pid(config: StackConfig) -> int | None:
    return live_pid(config.pid_file("moto"), MODULE)


def start(config: StackConfig) -> None:
    """Start moto unless it is running, wait until it answers, then bootstrap the account."""
    ec2 = _ec2(config)
    log = config.log_file("moto")
    pid = running_pid(config)
    if pid is None:
        # moto reads its image catalogue once, at start-up, from this file.
        images = config.run_dir / "moto-images.json"
        images.parent.mkdir(parents=True, exist_ok=True)
        images.write_text(json.dumps([_image(*image) for image in PUBLIC_IMAGES]))
        start_process(
            "moto",
            [sys.executable, "-m", MODULE, "-H", "127.0.0.1", "-p", str(config.cloud_port)],
            log=log,
            pid_file=config.pid_file("moto"),
            cwd=config.root,
            env={**os.environ, "MOTO_AMIS_PATH": str(images)},
            ready=lambda: _answers(ec2),
            timeout=READY_TIMEOUT,
        )
    else:
        wait_until_ready("moto", pid, log=log, ready=lambda: _answers(ec2), timeout=READY_TIMEOUT)
    _bootstrap(ec2)


def stop(config: StackConfig) -> None:
    stop_pid_files([(config.pid_file("moto"), MODULE)], timeout=STOP_TIMEOUT)


def _ec2(config: StackConfig) -> EC2Client:
    key_id, secret = credentials(config)
    return boto3.session.Session().client(
        "ec2",
        endpoint_url=endpoint_url(config),
        region_name=REGION,
        aws_access_key_id=key_id,
        aws_secret_access_key=secret,
        # The first EC2 call builds moto's region backend: slow once, then quick.
        config=Config(connect_timeout=2, read_timeout=20, retries={"max_attempts": 1}),
    )


def _answers(ec2: EC2Client) -> bool:
    try:
        ec2.describe_availability_zones()
        return True
    except (BotoCoreError, ClientError):
        return False  # not listening yet


def _bootstrap(ec2: EC2Client) -> None:
    """The lab network, unless a previous start made it, and a check that the images resolve."""
    named_lab: list[FilterTypeDef] = [{"Name": "tag:Name", "Values": [LAB]}]
    vpcs = ec2.describe_vpcs(Filters=named_lab)["Vpcs"]
    if vpcs:
        vpc_id = vpcs[0]["VpcId"]
    else:
        created = ec2.create_vpc(CidrBlock=LAB_VPC_CIDR, TagSpecifications=[_named("vpc")])
        vpc_id = created["Vpc"]["VpcId"]
    in_vpc: list[FilterTypeDef] = [*named_lab, {"Name": "vpc-id", "Values": [vpc_id]}]
    if not ec2.describe_subnets(Filters=in_vpc)["Subnets"]:
        ec2.create_subnet(
            VpcId=vpc_id,
            CidrBlock=LAB_SUBNET_CIDR,
            AvailabilityZone=f"{REGION}a",
            TagSpecifications=[_named("subnet")],
        )
    for owner, pattern in IMAGE_NAME_PATTERNS.items():
        found = ec2.describe_images(Owners=[owner], Filters=[{"Name": "name", "Values": [pattern]}])
        if not found["Images"]:
            raise StackError(f"moto has no image {pattern!r} of owner {owner}")


def _named(resource_type: ResourceTypeType) -> TagSpecificationTypeDef:
    return {"ResourceType": resource_type, "Tags": [{"Key": "Name", "Value": LAB}]}


def _image(ami_id: str, owner: str, name: str) -> dict[str, Any]:
    """One entry of moto's image catalogue (the keyword arguments of its `Ami` model)."""
    return {
        "ami_id": ami_id,
        "name": name,
        "description": name,
        "owner_id": owner,
        "public": True,
        "state": "available",
        "architecture": "x86_64",
        "virtualization_type": "hvm",
        "hypervisor": "xen",
        "image_type": "machine",
        "image_location": f"{owner}/{name}",
        "root_device_type": "ebs",
        "root_device_name": "/dev/xvda",
        "sriov": "simple",
        "creation_date": "2025-01-01T19:00:00.000Z",
    }
