"""Auditor settings, from the environment."""

from pathlib import Path

from events import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "auditor"
    identity_database_url: str
    consumer_batch_size: int = 500
    # The chain's HMAC key (base64 of 32 bytes), kept outside the database: whoever can write
    # the database still cannot forge a chain that verifies.
    chain_key_file: Path
    # The Ed25519 private key (PEM) that signs checkpoints; its public half verifies them.
    signing_key_file: Path
    # Where signed checkpoints are appended (JSON lines), outside the database, as well as to
    # the `audit.checkpoints` Kafka topic.
    checkpoint_file: Path
    # A checkpoint seals the records since the last one every so many records or seconds.
    checkpoint_every_records: int = 1000
    checkpoint_every_s: float = 60.0
