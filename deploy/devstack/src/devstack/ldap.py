"""A project-local OpenLDAP slapd, the target of the deployer's `directory_account` driver.

Its configuration is a slapd.conf regenerated at every start from the admin password file, so
the only state worth keeping is the mdb database under `ldap_dir/data`.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ldap3
from ldap3.core.exceptions import (
    LDAPEntryAlreadyExistsResult,
    LDAPException,
    LDAPInvalidCredentialsResult,
)

from apikeys.bootstrap import write_private
from devstack.config import StackConfig
from devstack.proc import StackError, live_pid, start_process, stop_pid_files, wait_until_ready

BASE_DN = "dc=provisioning,dc=local"
ADMIN_DN = f"cn=admin,{BASE_DN}"
PEOPLE_DN = f"ou=people,{BASE_DN}"
GROUPS_DN = f"ou=groups,{BASE_DN}"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
SCHEMAS = ("core", "cosine", "inetorgperson")
READY_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0


def url(config: StackConfig) -> str:
    return f"ldap://127.0.0.1:{config.ldap_port}"


def admin_password_file(config: StackConfig) -> Path:
    return config.secrets_dir / "ldap-admin-password"


def slapd_conf(config: StackConfig) -> Path:
    return config.ldap_dir / "slapd.conf"


def running_pid(config: StackConfig) -> int | None:
    # The configuration path names this stack's slapd among others (`make up` and the tests).
    return live_pid(config.pid_file("slapd"), str(slapd_conf(config)))


def start(config: StackConfig) -> None:
    """Initialise if needed, start unless running, wait for an admin bind, create the tree."""
    password = ensure_admin_password(config)
    log = config.log_file("slapd")
    pid = running_pid(config)
    if pid is None:
        # The database holds password hashes: for this user's eyes only.
        (config.ldap_dir / "data").mkdir(parents=True, exist_ok=True)
        config.ldap_dir.chmod(0o700)
        write_private(slapd_conf(config), render_slapd_conf(config, ssha_hash(password)))
        start_process(
            "slapd",
            [
                _slapd(),
                "-f", str(slapd_conf(config)),
                "-h", f"{url(config)}/",
                # Foreground, so the pid file names slapd itself; "none" still logs start, stop
                # and fatal errors (a port in use), which level 0 would swallow.
                "-d", "none",
            ],
            log=log,
            pid_file=config.pid_file("slapd"),
            cwd=config.ldap_dir,
            ready=lambda: _admin_bind_works(config, password),
            timeout=READY_TIMEOUT,
        )  # fmt: skip
    else:
        wait_until_ready(
            "slapd",
            pid,
            log=log,
            ready=lambda: _admin_bind_works(config, password),
            timeout=READY_TIMEOUT,
        )
    _create_tree(config, password)


def stop(config: StackConfig) -> None:
    # SIGTERM lets slapd finish its operations and close the database cleanly.
    stop_pid_files([(config.pid_file("slapd"), str(slapd_conf(config)))], timeout=STOP_TIMEOUT)


def ssha_hash(password: str) -> str:
    """The {SSHA} form slapd checks a simple bind against: SHA-1 of password + salt, salt
    appended. Computed here because `slappasswd -T` would hash the file's newline too."""
    salt = secrets.token_bytes(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def render_slapd_conf(config: StackConfig, admin_password_hash: str) -> str:
    includes = "".join(f"include {SCHEMA_DIR / name}.schema\n" for name in SCHEMAS)
    return f"""{includes}
modulepath {MODULE_DIR}
moduleload back_mdb

# Password Modify (RFC 3062) stores this hash, never the password itself.
password-hash {{SSHA}}
disallow bind_anon

database mdb
suffix "{BASE_DN}"
rootdn "{ADMIN_DN}"
rootpw {admin_password_hash}
directory {config.ldap_dir / "data"}
# A sparse file: the default of 10 MB is too small for a long-lived local directory.
maxsize 1073741824
index objectClass eq
index uid eq
index member eq

# The admin (the rootdn) bypasses these: it writes everything. Users may bind and read the
# directory; passwords are set by the deployer only, which keeps the one it reveals.
access to attrs=userPassword
    by anonymous auth
    by * none
access to *
    by users read
    by * none
"""


def ensure_admin_password(config: StackConfig) -> str:
    config.secrets_dir.mkdir(parents=True, exist_ok=True)
    config.secrets_dir.chmod(0o700)
    password_file = admin_password_file(config)
    if not password_file.exists():
        write_private(password_file, secrets.token_urlsafe(32))
    password = password_file.read_text().strip()
    if not password:
        raise StackError(f"{password_file} is empty; delete it to get a new one")
    return password


def _slapd() -> str:
    found = shutil.which("slapd") or shutil.which("slapd", path="/usr/sbin:/usr/local/sbin")
    if not found or not (SCHEMA_DIR / "core.schema").exists():
        raise StackError("OpenLDAP server not found (apt-get install slapd ldap-utils)")
    return found


@contextlib.contextmanager
def _admin_connection(config: StackConfig, password: str) -> Iterator[Any]:
    server = ldap3.Server(url(config), connect_timeout=2, get_info=ldap3.NONE)
    connection = ldap3.Connection(
        server, user=ADMIN_DN, password=password, raise_exceptions=True, receive_timeout=5
    )
    try:
        connection.bind()
        yield connection
    finally:
        with contextlib.suppress(LDAPException, OSError):
            connection.unbind()
        # ldap3 keeps, unclosed, the socket of a connection that failed to open.
        if connection.socket is not None:
            connection.socket.close()


def _admin_bind_works(config: StackConfig, password: str) -> bool:
    try:
        with _admin_connection(config, password):
            return True
    except LDAPInvalidCredentialsResult:
        # A slapd started before the password file was replaced: only a restart helps.
        raise StackError(
            f"slapd refuses the admin password in {admin_password_file(config)}; restart it"
        ) from None
    except LDAPException:
        return False  # not listening yet


def _create_tree(config: StackConfig, password: str) -> None:
    entries = [
        (BASE_DN, ["top", "dcObject", "organization"], {"dc": "provisioning", "o": "provisioning"}),
        (PEOPLE_DN, ["top", "organizationalUnit"], {"ou": "people"}),
        (GROUPS_DN, ["top", "organizationalUnit"], {"ou": "groups"}),
    ]
    with _admin_connection(config, password) as connection:
        for dn, object_classes, attributes in entries:
            with contextlib.suppress(LDAPEntryAlreadyExistsResult):
                connection.add(dn, object_classes, attributes)
