"""The `cloud_vm` driver: one EC2 instance with a security group of its own."""

from __future__ import annotations

import asyncio
from ipaddress import IPv4Address
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from deployer.drivers.aws.clients import (
    TAG_REQUEST,
    TAG_RESOURCE,
    AwsClients,
    AwsTarget,
    error_code,
    parse_configuration,
    resource_tags,
    tag_differences,
)
from deployer.drivers.base import Deployed, Placement, TargetConflict, marker
from events import PermanentError

if TYPE_CHECKING:
    from mypy_boto3_ec2 import EC2Client
    from mypy_boto3_ec2.literals import InstanceTypeType
    from mypy_boto3_ec2.type_defs import FilterTypeDef, InstanceTypeDef, TagTypeDef


class VmConfiguration(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    vcpu: int = Field(ge=1)
    ram_gb: int = Field(ge=1)
    image: str
    subnet: str
    private_ip: IPv4Address


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
