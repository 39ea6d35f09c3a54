"""Every service's Swagger UI and ReDoc work without a network: every asset the pages load
is served by the service itself."""

from __future__ import annotations

import re

import httpx
import pytest
from tests.e2e.client import SERVICES, Platform

pytestmark = pytest.mark.integration

_LOADED = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


@pytest.mark.parametrize("service", SERVICES)
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_documentation_loads_only_the_services_own_assets(
    platform: Platform, service: str, page: str
):
    async with httpx.AsyncClient(base_url=platform.stack.service_url(service)) as client:
        answer = await client.get(page)
        assert answer.status_code == 200 and "text/html" in answer.headers["content-type"]
        html = answer.text
        loaded = _LOADED.findall(html)
        assert loaded, html
        assert "//" not in " ".join(loaded), f"{page} loads from elsewhere: {loaded}"
        for asset in loaded:
            served = await client.get(asset)
            assert served.status_code == 200, (asset, served.status_code)
            assert served.content, asset
        # The document the page shows is there too.
        assert (await client.get("/openapi.json")).json()["info"]["title"] == service
