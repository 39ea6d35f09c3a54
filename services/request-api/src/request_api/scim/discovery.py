"""What this SCIM service is (RFC 7643 §5-7): its models, resource types and capabilities,
described by scim2-models and published on the discovery endpoints."""

from __future__ import annotations

from scim2_models import (
    AuthenticationScheme,
    Bulk,
    ChangePassword,
    EnterpriseUser,
    ETag,
    Filter,
    Group,
    Meta,
    Patch,
    ResourceType,
    Schema,
    ScimProvider,
    ServiceProviderConfig,
    Sort,
    User,
)

from request_api.scim.onboarding import UserModel

MAX_RESULTS = 200


def describe() -> ScimProvider:
    return ScimProvider(
        models=[User, EnterpriseUser, Group],
        resource_types=[ResourceType.from_resource(UserModel), ResourceType.from_resource(Group)],
        config=ServiceProviderConfig(
            patch=Patch(supported=True),
            bulk=Bulk(supported=False, max_operations=0, max_payload_size=0),
            filter=Filter(supported=True, max_results=MAX_RESULTS),
            change_password=ChangePassword(supported=False),
            sort=Sort(supported=False),
            etag=ETag(supported=True),
            authentication_schemes=[
                AuthenticationScheme(
                    type="oauthbearertoken",
                    name="Bearer API key",
                    description="An admin API key of the tenant, as `Authorization: Bearer`.",
                    primary=True,
                )
            ],
        ),
    )


def service_provider_config(provider: ScimProvider, base_url: str) -> ServiceProviderConfig:
    assert provider.config is not None
    config = provider.config.model_copy(deep=True)
    config.meta = Meta(
        resource_type="ServiceProviderConfig", location=f"{base_url}/ServiceProviderConfig"
    )
    return config


def schemas(provider: ScimProvider, base_url: str) -> list[Schema]:
    published = []
    for schema in provider.schemas:
        copy = schema.model_copy(deep=True)
        copy.meta = Meta(resource_type="Schema", location=f"{base_url}/Schemas/{schema.id}")
        published.append(copy)
    return published


def resource_types(provider: ScimProvider, base_url: str) -> list[ResourceType]:
    published = []
    for resource_type in provider.resource_types:
        copy = resource_type.model_copy(deep=True)
        copy.meta = Meta(
            resource_type="ResourceType", location=f"{base_url}/ResourceTypes/{resource_type.id}"
        )
        published.append(copy)
    return published
