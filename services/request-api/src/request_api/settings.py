"""Request API settings, from the environment."""

from events import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "request-api"
    identity_database_url: str
    deployer_url: str = "http://127.0.0.1:8004"
    allocator_url: str = "http://127.0.0.1:8002"
    lease_sweep_interval_s: float = 30.0
    # How long before expiry `lease.expiring` is announced.
    lease_warning_s: float = 24 * 3600
