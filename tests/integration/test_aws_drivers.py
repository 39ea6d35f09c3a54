"""The EC2 and S3 drivers against a real moto server started by devstack.cloud: provisioning,
idempotence, modify, drift, conflicts, removal, and an endpoint that is down or silent."""

from __future__ import annotations

import itertools
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from pydantic import ValidationError
from tests.integration.isolated import free_port, isolated_config

from deployer.drivers.aws.clients import BUDGET_FACTOR, AwsTarget, read_secret_access_key
from deployer.drivers.aws.ec2 import Ec2InstanceDriver
from deployer.drivers.aws.s3 import S3BucketDriver, bucket_name_for
from deployer.drivers.base import Placement, TargetConflict, TargetUnavailable
from devstack import cloud
from devstack.config import StackConfig
from events import PermanentError

pytestmark = pytest.mark.integration

TIMEOUT_S = 2.0
# Each VM gets an address of its own in the lab subnet, as the allocator would hand out.
_addresses = (f"10.20.0.{host}" for host in itertools.count(16))


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StackConfig]:
    root = tmp_path_factory.mktemp("cloud")
    config = isolated_config(root, "cloud_port")
    try:
        cloud.start(config)
        yield config
    finally:
        cloud.stop(config)


@pytest.fixture(scope="module")
def target(config: StackConfig) -> AwsTarget:
    access_key_id, _ = cloud.credentials(config)
    return AwsTarget(
        endpoint_url=cloud.endpoint_url(config),
        region=cloud.REGION,
        access_key_id=access_key_id,
        secret_access_key_file=cloud.secret_key_file(config),
    )


def behind_the_back(config: StackConfig, service: Any) -> Any:
    """A plain boto3 client, for what someone else does in the account."""
    access_key_id, secret = cloud.credentials(config)
    return boto3.session.Session().client(
        service,
        endpoint_url=cloud.endpoint_url(config),
        region_name=cloud.REGION,
        aws_access_key_id=access_key_id,
        aws_secret_access_key=secret,
        config=Config(s3={"addressing_style": "path"}),
    )


@pytest.fixture(scope="module")
def ec2(config: StackConfig) -> Any:
    return behind_the_back(config, "ec2")


@pytest.fixture(scope="module")
def s3(config: StackConfig) -> Any:
    return behind_the_back(config, "s3")


@pytest.fixture
async def vms(target: AwsTarget) -> AsyncIterator[Ec2InstanceDriver]:
    driver = Ec2InstanceDriver(target, timeout_s=TIMEOUT_S)
    yield driver
    await driver.close()


@pytest.fixture
async def buckets(target: AwsTarget) -> AsyncIterator[S3BucketDriver]:
    driver = S3BucketDriver(target, timeout_s=TIMEOUT_S)
    yield driver
    await driver.close()


def placement() -> Placement:
    return Placement(
        server_id="aws",
        request_id=uuid.uuid4(),
        resource_id=uuid.uuid4(),
        tenant="platform",
        owner="ann",
    )


def vm(**changes: Any) -> dict[str, Any]:
    return {
        "name": "build_box",
        "vcpu": 2,
        "ram_gb": 4,
        "image": "debian-12",
        "subnet": "lab",
        "private_ip": next(_addresses),
    } | changes


def bucket(**changes: Any) -> dict[str, Any]:
    return {"name": f"data_{uuid.uuid4().hex[:8]}", "versioning": False, "size_gb": 100} | changes


def instances_of(ec2: Any, where: Placement) -> list[dict[str, Any]]:
    found = ec2.describe_instances(
        Filters=[{"Name": "tag:provisioning:request-id", "Values": [str(where.request_id)]}]
    )
    return [
        instance
        for reservation in found["Reservations"]
        for instance in reservation["Instances"]
        if instance["State"]["Name"] != "terminated"
    ]


def groups_of(ec2: Any, where: Placement) -> list[dict[str, Any]]:
    found = ec2.describe_security_groups(
        Filters=[{"Name": "tag:provisioning:request-id", "Values": [str(where.request_id)]}]
    )
    return list(found["SecurityGroups"])


def bucket_exists(s3: Any, name: str) -> bool:
    return name in {entry["Name"] for entry in s3.list_buckets()["Buckets"]}


async def test_a_vm_is_created_tagged_and_verified_and_a_second_apply_changes_nothing(
    vms: Ec2InstanceDriver, ec2: Any
) -> None:
    where, configuration = placement(), vm()
    deployed = await vms.apply(where, configuration, None)

    outputs = deployed.outputs
    assert outputs["private_ip"] == configuration["private_ip"]
    assert outputs["instance_type"] == "t3.medium"
    assert outputs["region"] == cloud.REGION
    assert await vms.verify(where, configuration, None) == []
    [instance] = instances_of(ec2, where)
    debian_image = next(ami for ami, owner, _ in cloud.PUBLIC_IMAGES if owner == cloud.DEBIAN_OWNER)
    assert instance["InstanceId"] == outputs["instance_id"]
    assert instance["ImageId"] == debian_image
    assert instance["SubnetId"] == outputs["subnet_id"]
    [interface] = instance["NetworkInterfaces"]
    assert [g["GroupId"] for g in interface["Groups"]] == [outputs["security_group_id"]]
    assert {tag["Key"]: tag["Value"] for tag in instance["Tags"]} == {
        "Name": "build_box",
        "provisioning:request-id": str(where.request_id),
        "provisioning:resource-id": str(where.resource_id),
        "provisioning:owner": "ann",
        "provisioning:tenant": "platform",
    }
    [group] = groups_of(ec2, where)
    assert group["GroupName"] == f"prov-vm-{where.resource_id}"

    again = await vms.apply(where, configuration, None)
    assert again.outputs == outputs
    assert len(instances_of(ec2, where)) == 1
    assert len(groups_of(ec2, where)) == 1


async def test_an_ubuntu_vm_gets_the_ubuntu_image(vms: Ec2InstanceDriver, ec2: Any) -> None:
    where = placement()
    await vms.apply(where, vm(image="ubuntu-24.04"), None)
    [instance] = instances_of(ec2, where)
    assert instance["ImageId"] == next(
        ami for ami, owner, _ in cloud.PUBLIC_IMAGES if owner == cloud.CANONICAL_OWNER
    )


async def test_a_modify_changes_the_instance_type_in_place(
    vms: Ec2InstanceDriver, ec2: Any
) -> None:
    where, small = placement(), vm(vcpu=2, ram_gb=4)
    created = await vms.apply(where, small, None)
    bigger = small | {"vcpu": 4, "ram_gb": 16}

    modified = await vms.apply(where, bigger, None)

    assert modified.outputs["instance_id"] == created.outputs["instance_id"]
    assert modified.outputs["instance_type"] == "t3.xlarge"
    assert await vms.verify(where, bigger, None) == []
    assert await vms.verify(where, small, None) == ["the instance type is t3.xlarge, not t3.medium"]
    [instance] = instances_of(ec2, where)
    assert instance["State"]["Name"] == "running"


async def test_disable_stops_the_vm_and_apply_starts_it_again(
    vms: Ec2InstanceDriver, ec2: Any
) -> None:
    where, configuration = placement(), vm()
    await vms.apply(where, configuration, None)

    await vms.disable(where, configuration)
    await vms.disable(where, configuration)

    assert await vms.verify(where, configuration, None) == ["the instance is stopped, not running"]
    await vms.apply(where, configuration, None)
    assert await vms.verify(where, configuration, None) == []


async def test_drift_behind_the_drivers_back_is_reported_and_apply_repairs_it(
    vms: Ec2InstanceDriver, ec2: Any
) -> None:
    where, configuration = placement(), vm()
    first = await vms.apply(where, configuration, None)
    instance_id = first.outputs["instance_id"]
    ec2.modify_instance_attribute(InstanceId=instance_id, InstanceType={"Value": "t3.large"})
    ec2.delete_tags(Resources=[instance_id], Tags=[{"Key": "provisioning:owner"}])

    assert await vms.verify(where, configuration, None) == [
        "the instance type is t3.large, not t3.medium",
        "tag provisioning:owner is None, expected 'ann'",
    ]
    await vms.apply(where, configuration, None)
    assert await vms.verify(where, configuration, None) == []

    ec2.terminate_instances(InstanceIds=[instance_id])
    assert await vms.verify(where, configuration, None) == ["missing"]
    replaced = await vms.apply(where, configuration, None)
    assert replaced.outputs["instance_id"] != instance_id
    assert await vms.verify(where, configuration, None) == []


async def test_remove_terminates_the_vm_and_deletes_its_security_group(
    vms: Ec2InstanceDriver, ec2: Any
) -> None:
    where, configuration = placement(), vm()
    await vms.apply(where, configuration, None)
    bystander, bystander_configuration = placement(), vm()
    await vms.apply(bystander, bystander_configuration, None)

    await vms.remove(where, configuration)
    await vms.remove(where, configuration)

    assert instances_of(ec2, where) == []
    assert groups_of(ec2, where) == []
    assert await vms.verify(where, configuration, None) == ["missing"]
    assert await vms.verify(bystander, bystander_configuration, None) == []


async def test_what_cannot_be_provisioned_is_a_permanent_error(vms: Ec2InstanceDriver) -> None:
    with pytest.raises(PermanentError, match="no image is configured"):
        await vms.apply(placement(), vm(image="windows-95"), None)
    with pytest.raises(PermanentError, match="0 subnets are tagged Name=nowhere"):
        await vms.apply(placement(), vm(subnet="nowhere"), None)
    with pytest.raises(PermanentError, match="private_ip"):
        await vms.apply(placement(), vm(private_ip="not-an-address"), None)


def test_the_secret_key_is_read_from_a_file_and_never_shown(
    config: StackConfig, tmp_path: Any
) -> None:
    _, secret = cloud.credentials(config)
    assert read_secret_access_key(cloud.secret_key_file(config)) == secret
    bare = tmp_path / "bare"
    bare.write_text(f"{secret}\n")
    assert read_secret_access_key(bare) == secret
    broken = tmp_path / "broken"
    broken.write_text(f"[default]\n{secret}\n")
    with pytest.raises(PermanentError) as refused:
        read_secret_access_key(broken)
    assert secret not in str(refused.value)
    assert refused.value.__cause__ is None and refused.value.__suppress_context__
    with pytest.raises(ValidationError, match="go together"):
        AwsTarget(region=cloud.REGION, access_key_id="AKIAEXAMPLE")


def test_bucket_names_follow_the_s3_rules() -> None:
    assert bucket_name_for("prov-", "platform", "team_data") == "prov-platform-team-data"
    assert bucket_name_for("prov-", "Data_Science", "raw") == "prov-data-science-raw"
    for tenant, name in [("platform", "x" * 60), ("platform", "ends_"), ("a..b", "raw")]:
        with pytest.raises(PermanentError, match="not a valid S3 bucket name"):
            bucket_name_for("prov-", tenant, name)


async def test_a_bucket_is_created_private_encrypted_and_tagged_once(
    buckets: S3BucketDriver, s3: Any
) -> None:
    where, configuration = placement(), bucket()
    name = f"prov-platform-{configuration['name'].replace('_', '-')}"

    deployed = await buckets.apply(where, configuration, None)
    again = await buckets.apply(where, configuration, None)

    assert (
        deployed.outputs
        == again.outputs
        == {
            "bucket": name,
            "region": cloud.REGION,
            "arn": f"arn:aws:s3:::{name}",
        }
    )
    assert [b for b in s3.list_buckets()["Buckets"] if b["Name"] == name] != []
    assert s3.get_bucket_location(Bucket=name)["LocationConstraint"] == cloud.REGION
    rules = s3.get_bucket_encryption(Bucket=name)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket=name)["PublicAccessBlockConfiguration"].values())
    tags = {tag["Key"]: tag["Value"] for tag in s3.get_bucket_tagging(Bucket=name)["TagSet"]}
    assert tags["provisioning:request-id"] == str(where.request_id)
    assert tags["provisioning:tenant"] == "platform"
    assert "Status" not in s3.get_bucket_versioning(Bucket=name)
    assert await buckets.verify(where, configuration, None) == []


async def test_a_modify_turns_versioning_on_and_off(buckets: S3BucketDriver, s3: Any) -> None:
    where, plain = placement(), bucket(versioning=False)
    versioned = plain | {"versioning": True}
    name = str((await buckets.apply(where, plain, None)).outputs["bucket"])

    await buckets.apply(where, versioned, None)

    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Enabled"
    assert await buckets.verify(where, versioned, None) == []
    assert await buckets.verify(where, plain, None) == ["versioning is on, expected off"]
    await buckets.apply(where, plain, None)
    assert s3.get_bucket_versioning(Bucket=name)["Status"] == "Suspended"
    assert await buckets.verify(where, plain, None) == []


async def test_bucket_drift_is_reported(buckets: S3BucketDriver, s3: Any) -> None:
    where, configuration = placement(), bucket()
    name = str((await buckets.apply(where, configuration, None)).outputs["bucket"])

    s3.delete_bucket_encryption(Bucket=name)
    s3.delete_public_access_block(Bucket=name)
    assert await buckets.verify(where, configuration, None) == [
        "the bucket has no default encryption",
        "public access is not blocked",
    ]
    await buckets.apply(where, configuration, None)
    assert await buckets.verify(where, configuration, None) == []

    s3.delete_bucket(Bucket=name)
    assert await buckets.verify(where, configuration, None) == ["missing"]


async def test_a_bucket_of_the_same_name_that_is_not_ours_is_a_conflict_and_is_left_alone(
    buckets: S3BucketDriver, s3: Any
) -> None:
    where, configuration = placement(), bucket()
    name = bucket_name_for("prov-", where.tenant, configuration["name"])
    s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": cloud.REGION})
    s3.put_object(Bucket=name, Key="theirs.txt", Body=b"not yours")

    with pytest.raises(TargetConflict, match=name):
        await buckets.apply(where, configuration, None)
    assert await buckets.verify(where, configuration, None) == [
        f"bucket {name} is not tagged as this request's"
    ]
    await buckets.remove(where, configuration)

    assert s3.get_object(Bucket=name, Key="theirs.txt")["Body"].read() == b"not yours"


async def test_remove_deletes_every_version_and_delete_marker_then_the_bucket(
    buckets: S3BucketDriver, s3: Any
) -> None:
    where, configuration = placement(), bucket(versioning=True)
    name = str((await buckets.apply(where, configuration, None)).outputs["bucket"])
    for generation in range(3):
        for key in ("a.txt", "dir/b.txt"):
            s3.put_object(Bucket=name, Key=key, Body=f"{generation}".encode())
    s3.delete_object(Bucket=name, Key="a.txt")  # a delete marker on top of three versions
    s3.create_multipart_upload(Bucket=name, Key="unfinished.bin")

    await buckets.remove(where, configuration)
    await buckets.remove(where, configuration)

    assert not bucket_exists(s3, name)
    assert await buckets.verify(where, configuration, None) == ["missing"]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections (the kernel's backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


@pytest.mark.parametrize("driver_class", [Ec2InstanceDriver, S3BucketDriver])
@pytest.mark.parametrize("endpoint", ["down", "silent"])
async def test_an_endpoint_that_is_down_or_silent_is_unavailable_within_the_budget(
    target: AwsTarget,
    silent_port: int,
    driver_class: type[Ec2InstanceDriver | S3BucketDriver],
    endpoint: str,
) -> None:
    port = free_port() if endpoint == "down" else silent_port
    timeout_s = 0.15
    driver = driver_class(
        target.model_copy(update={"endpoint_url": f"http://127.0.0.1:{port}"}),
        timeout_s=timeout_s,
    )
    configuration = vm() if driver_class is Ec2InstanceDriver else bucket()
    started = time.monotonic()
    try:
        with pytest.raises(TargetUnavailable):
            await driver.apply(placement(), configuration, None)
    finally:
        await driver.close()
    assert time.monotonic() - started < timeout_s * BUDGET_FACTOR + 1.0
