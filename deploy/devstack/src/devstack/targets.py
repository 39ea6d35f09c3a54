"""The target systems the deployer provisions into, started locally: an OpenLDAP directory,
an AWS-compatible endpoint (moto), and a receiver playing the licence vendor and the MDM.
The deployer is pointed at them by configuration alone, as it would be at production ones."""

from __future__ import annotations

import json

from devstack import cloud, ldap, receiver
from devstack.config import StackConfig

# The allocator's `target` of each catalog item is the server id the deployer looks up.
LDAP_SERVER = "ldap"
AWS_SERVER = "aws"
LICENCE_SERVER = "licence-vendor"
MDM_SERVER = "mdm"


def start(config: StackConfig) -> None:
    ldap.start(config)
    cloud.start(config)
    receiver.start(config)


def stop(config: StackConfig) -> None:
    receiver.stop(config)
    cloud.stop(config)
    ldap.stop(config)


def running_pids(config: StackConfig) -> dict[str, int | None]:
    return {
        "slapd": ldap.running_pid(config),
        "moto": cloud.running_pid(config),
        "receiver": receiver.running_pid(config),
    }


def deployer_environment(config: StackConfig) -> dict[str, str]:
    """Where the deployer finds each target; secrets stay in files it reads."""
    access_key_id, _ = cloud.credentials(config)
    return {
        "LDAP_TARGETS": json.dumps(
            {
                LDAP_SERVER: {
                    "url": ldap.url(config),
                    "bind_dn": ldap.ADMIN_DN,
                    "bind_password_file": str(ldap.admin_password_file(config)),
                    "base_dn": ldap.BASE_DN,
                }
            }
        ),
        "AWS_TARGETS": json.dumps(
            {
                AWS_SERVER: {
                    "endpoint_url": cloud.endpoint_url(config),
                    "region": cloud.REGION,
                    "access_key_id": access_key_id,
                    "secret_access_key_file": str(cloud.secret_key_file(config)),
                }
            }
        ),
        "LICENCE_TARGETS": json.dumps({LICENCE_SERVER: _webhook(config, LICENCE_SERVER)}),
        "MDM_TARGETS": json.dumps({MDM_SERVER: _webhook(config, MDM_SERVER)}),
        # The receiver is on loopback, which outbound calls may reach only when named.
        "OUTBOUND_ALLOW_LIST": receiver.endpoint(config),
    }


def _webhook(config: StackConfig, system: str) -> dict[str, str]:
    return {
        "url": f"{receiver.url(config)}/{system}",
        "secret_file": str(receiver.secret_file(config, system)),
    }
