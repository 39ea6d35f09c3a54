"""The `storage_bucket` driver: one S3 bucket, encrypted, private, versioned on request."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict

from deployer.drivers.aws.clients import (
    TAG_REQUEST,
    AwsClients,
    AwsTarget,
    error_code,
    parse_configuration,
    resource_tags,
    tag_differences,
)
from deployer.drivers.base import Deployed, Placement, TargetConflict, TargetUnavailable
from events import PermanentError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.literals import BucketLocationConstraintType
    from mypy_boto3_s3.type_defs import CreateBucketConfigurationTypeDef, ObjectIdentifierTypeDef


class BucketConfiguration(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str
    versioning: bool = False
    # What the quota counts: S3 itself has no size to set.
    size_gb: int | None = None


# (type, vCPU, GiB), cheapest first: the first that fits is the cheapest that fits.
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
