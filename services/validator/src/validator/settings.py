"""Validator settings, from the environment."""

from events import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "validator"
