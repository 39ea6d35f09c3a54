"""Auditor settings, from the environment."""

from events import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "auditor"
    identity_database_url: str
    consumer_batch_size: int = 500
