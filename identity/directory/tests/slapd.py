"""A private OpenLDAP server (Debian's ``slapd``) for the directory tests and benchmarks.

Each :class:`Slapd` has its own configuration (``cn=config``), database, CA and server certificate (made here with
``cryptography``, so clients verify the server's certificate against that CA) and two free ports: one for LDAPS and
one for plain LDAP with StartTLS. It is loaded offline with ``slapadd`` (fast even for 100,000 entries) and then
served by a ``slapd`` process of its own; nothing of the distribution's slapd service is used.

The tree (``dc=example,dc=edu``)::

    ou=people      the people: uid = institution ID, inetOrgPerson with a small test schema's
                   Active-Directory-like userAccountControl (512 enabled, 514 disabled) and pwdLastSet
    ou=groups      groupOfNames: staff (every synced person), helpdesk, auditors, vpn
    ou=service     cn=reader, the bind account (reads everything)
    ou=policies    ppolicy: cn=default (lockout, must change after a reset), cn=expiring (passwords expire)

Named people: alice (help desk, VPN), bob (auditor), carol (plain), dave (disabled: userAccountControl 514),
erin (locked by the directory: pwdAccountLockedTime), frank (password expired), grace (must change her password:
pwdReset), plus ``bulk`` numbered people ``person00001``... (with a pwdChangedTime) so that paged results really page (the database's
size limit is ``SIZE_LIMIT`` entries per search, and per page).

Entries are changed while it runs through :meth:`Slapd.add_person`, :meth:`Slapd.modify`, :meth:`Slapd.remove`,
:meth:`Slapd.add_to_group` and :meth:`Slapd.remove_from_group` (python-ldap, as the directory's administrator);
the memberof overlay keeps each person's ``memberOf`` in step, as Active Directory does.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import ipaddress
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
MODULE_PATH = "/usr/lib/ldap"
SCHEMA_DIR = Path("/etc/ldap/schema")

BASE = "dc=example,dc=edu"
PEOPLE = f"ou=people,{BASE}"
GROUPS = f"ou=groups,{BASE}"
ADMIN_DN = f"cn=admin,{BASE}"
READER_DN = f"cn=reader,ou=service,{BASE}"
STAFF_GROUP = f"cn=staff,{GROUPS}"
HELPDESK_GROUP = f"cn=helpdesk,{GROUPS}"
AUDITORS_GROUP = f"cn=auditors,{GROUPS}"
VPN_GROUP = f"cn=vpn,{GROUPS}"
# slapd's limit per search and per page of a paged search (Active Directory's MaxPageSize is 1,000).
SIZE_LIMIT = 100
PASSWORD = "directory horse battery 7"  # every test person's directory password
ENABLED, DISABLED = 512, 514  # userAccountControl: NORMAL_ACCOUNT, and with ACCOUNTDISABLE (0x2)


def missing() -> str | None:
    """Why a private slapd cannot run here, or None."""
    if not (Path(SLAPD).exists() and Path(SLAPADD).exists()):
        return "needs Debian's slapd (apt-get install slapd ldap-utils)"
    try:
        import ldap  # noqa: F401
    except ImportError:
        return "needs python-ldap (make install-ldap; it builds against libldap2-dev and libsasl2-dev)"
    return None


def ssha(password: str) -> str:
    """``{SSHA}``, the scheme slapd's own password change writes by default."""
    salt = os.urandom(8)
    return "{SSHA}" + base64.b64encode(hashlib.sha1(password.encode() + salt).digest() + salt).decode()  # noqa: S324


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Person:
    uid: str
    given: str
    sn: str
    mail: str = ""
    department: str = ""
    mobile: str = ""
    uac: int = ENABLED
    groups: tuple[str, ...] = (STAFF_GROUP,)
    password: str = PASSWORD
    extra: dict[str, list[str]] = field(default_factory=dict)  # more attributes, e.g. ppolicy's

    @property
    def dn(self) -> str:
        return f"uid={self.uid},{PEOPLE}"

    def attributes(self) -> dict[str, list[str]]:
        attributes = {
            "objectClass": ["inetOrgPerson", "testADAccount"],
            "uid": [self.uid],
            "cn": [f"{self.given} {self.sn}"],
            "givenName": [self.given],
            "sn": [self.sn],
            "userAccountControl": [str(self.uac)],
            "userPassword": [ssha(self.password)],
        }
        for name, value in (("mail", self.mail), ("departmentNumber", self.department), ("mobile", self.mobile)):
            if value:
                attributes[name] = [value]
        return {**attributes, **self.extra}


NAMED = [
    Person(
        "alice",
        "Alice",
        "Able",
        "alice@example.edu",
        "Cardiology",
        "+16175550101",
        groups=(STAFF_GROUP, HELPDESK_GROUP, VPN_GROUP),
    ),
    Person("bob", "Bob", "Baker", "bob@example.edu", "Audit", groups=(STAFF_GROUP, AUDITORS_GROUP)),
    Person("carol", "Carol", "Clark", "carol@example.edu", "Radiology"),
    Person("dave", "Dave", "Dale", "dave@example.edu", "Surgery", uac=DISABLED),
    Person(
        "erin", "Erin", "Evans", "erin@example.edu", "Pharmacy", extra={"pwdAccountLockedTime": ["000001010000Z"]}
    ),  # locked until an administrator unlocks her
    Person(
        "frank",
        "Frank",
        "Fisher",
        "frank@example.edu",
        "Nursing",
        extra={"pwdPolicySubentry": [f"cn=expiring,ou=policies,{BASE}"], "pwdChangedTime": ["20200101000000Z"]},
    ),
    Person("grace", "Grace", "Green", "grace@example.edu", "Nursing", extra={"pwdReset": ["TRUE"]}),
]


# The bulk people's password-changed stamp (ppolicy's pwdChangedTime, which slapadd's offline load does not write).
BULK_PASSWORD_CHANGED = "20260101000000Z"


def bulk_people(count: int, *, start: int = 1) -> Iterator[Person]:
    for n in range(start, start + count):
        yield Person(
            f"person{n:05d}",
            "Person",
            f"Number{n}",
            f"person{n:05d}@example.edu",
            "Medicine",
            extra={"pwdChangedTime": [BULK_PASSWORD_CHANGED]},
        )


def _ldif(dn: str, attributes: dict[str, list[str]]) -> str:
    lines = [f"dn: {dn}"]
    for name, values in attributes.items():
        lines += [f"{name}: {value}" for value in values]
    return "\n".join(lines) + "\n\n"


def _tree(people: list[Person], reader_password: str) -> Iterator[str]:
    yield _ldif(BASE, {"objectClass": ["dcObject", "organization"], "dc": ["example"], "o": ["Example"]})
    for ou in ("people", "groups", "service", "policies"):
        yield _ldif(f"ou={ou},{BASE}", {"objectClass": ["organizationalUnit"], "ou": [ou]})
    yield _ldif(
        READER_DN,
        {
            "objectClass": ["organizationalRole", "simpleSecurityObject"],
            "cn": ["reader"],
            "userPassword": [ssha(reader_password)],
        },
    )
    policy = {
        "objectClass": ["organizationalRole", "pwdPolicy"],
        "pwdAttribute": ["userPassword"],
        "pwdLockout": ["TRUE"],
        "pwdMaxFailure": ["5"],
        "pwdMustChange": ["TRUE"],
        "pwdAllowUserChange": ["TRUE"],
    }
    yield _ldif(f"cn=default,ou=policies,{BASE}", {**policy, "cn": ["default"]})
    yield _ldif(
        f"cn=expiring,ou=policies,{BASE}",
        {**policy, "cn": ["expiring"], "pwdMaxAge": ["86400"], "pwdGraceAuthNLimit": ["0"]},
    )
    members: dict[str, list[str]] = {g: [] for g in (STAFF_GROUP, HELPDESK_GROUP, AUDITORS_GROUP, VPN_GROUP)}
    for person in people:
        # slapadd runs no overlay: memberOf is written here as the memberof overlay would.
        yield _ldif(person.dn, {**person.attributes(), "memberOf": list(person.groups)})
        for group in person.groups:
            members[group].append(person.dn)
    for group, dns in members.items():
        cn = group.split(",", 1)[0][3:]
        # groupOfNames needs a member: the reader stands in for an empty group.
        yield _ldif(group, {"objectClass": ["groupOfNames"], "cn": [cn], "member": dns or [READER_DN]})


TEST_SCHEMA = """\
dn: cn=testad,cn=schema,cn=config
objectClass: olcSchemaConfig
cn: testad
olcAttributeTypes: ( 1.2.840.113556.1.4.8 NAME 'userAccountControl' DESC 'as in Active Directory'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
olcAttributeTypes: ( 1.2.840.113556.1.4.96 NAME 'pwdLastSet' DESC 'as in Active Directory'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
olcObjectClasses: ( 1.3.6.1.4.1.4203.666.11.99.1 NAME 'testADAccount' DESC 'test only: an AD-like account'
  AUXILIARY MAY ( userAccountControl $ pwdLastSet ) )

"""


def _config(directory: Path, *, root_password: str, certificate: Path, key: Path, ca: Path) -> str:
    schemas = "".join(f"include: file://{SCHEMA_DIR / name}.ldif\n\n" for name in ("core", "cosine", "inetorgperson"))
    reader = f'dn.exact="{READER_DN}"'
    return f"""\
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: {directory}/slapd.pid
olcTLSCACertificateFile: {ca}
olcTLSCertificateFile: {certificate}
olcTLSCertificateKeyFile: {key}

dn: cn=module{{0}},cn=config
objectClass: olcModuleList
cn: module{{0}}
olcModulePath: {MODULE_PATH}
olcModuleLoad: back_mdb
olcModuleLoad: memberof
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

{schemas}{TEST_SCHEMA}dn: olcDatabase={{-1}}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {{-1}}frontend

dn: olcDatabase={{0}}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {{0}}config

dn: olcDatabase={{1}}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {{1}}mdb
olcDbDirectory: {directory}/data
olcDbMaxSize: 4294967296
olcSuffix: {BASE}
olcRootDN: {ADMIN_DN}
olcRootPW: {ssha(root_password)}
olcSizeLimit: size.soft={SIZE_LIMIT} size.hard={SIZE_LIMIT} size.pr={SIZE_LIMIT} size.prtotal=unlimited
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: entryUUID eq
olcDbIndex: member eq
olcDbIndex: memberOf eq
olcAccess: {{0}}to attrs=userPassword by self =xw by anonymous auth by * none
olcAccess: {{1}}to * by {reader} read by self read by * none

dn: olcOverlay={{0}}memberof,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {{0}}memberof
olcMemberOfRefInt: TRUE
olcMemberOfGroupOC: groupOfNames
olcMemberOfMemberAD: member
olcMemberOfMemberOfAD: memberOf

dn: olcOverlay={{1}}ppolicy,olcDatabase={{1}}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {{1}}ppolicy
olcPPolicyDefault: cn=default,ou=policies,{BASE}
olcPPolicyUseLockout: TRUE

"""


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A CA, and a certificate it signs for localhost and 127.0.0.1. Returns (ca, certificate, key) paths."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, *, ca: bool, san=None):
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(signing_key, hashes.SHA256())

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test directory CA")])
    ca_cert = build(ca_name, ca_name, ca_key.public_key(), ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    san = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert = build(name, ca_name, key.public_key(), ca_key, ca=False, san=san)
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    paths[2].chmod(0o600)
    return paths


class Slapd:
    """One private slapd. ``Slapd(bulk=250).start()``; ``stop()`` ends it and ``start()`` serves the same data again."""

    def __init__(self, *, bulk: int = 250, directory: Path | None = None, people: Iterable[Person] | None = None):
        self.directory = Path(directory or tempfile.mkdtemp(prefix="slapd-"))
        self._own_directory = directory is None
        self.root_password = base64.urlsafe_b64encode(os.urandom(12)).decode()
        self.reader_password = base64.urlsafe_b64encode(os.urandom(12)).decode()
        self.ldaps_port, self.ldap_port = free_port(), free_port()
        self.ca_file, self.certificate, self.key = _certificates(self.directory)
        self.people = list(NAMED if people is None else people) + list(bulk_people(bulk))
        self.process: subprocess.Popen | None = None
        self._load()

    @property
    def ldaps_uri(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ldap_uri(self) -> str:  # plain LDAP: for StartTLS
        return f"ldap://127.0.0.1:{self.ldap_port}"

    def settings(self, **overrides) -> dict:
        """Django settings that point the site at this directory (LDAPS, certificate verified)."""
        return {
            "LDAP_SERVER_URIS": [self.ldaps_uri],
            "LDAP_BIND_DN": READER_DN,
            "LDAP_BIND_PASSWORD": self.reader_password,
            "LDAP_USER_SEARCH_BASE": PEOPLE,
            "LDAP_CA_CERT_FILE": str(self.ca_file),
            "LDAP_START_TLS": False,
            "LDAP_PAGE_SIZE": SIZE_LIMIT,  # the most slapd sends per page here; a larger page is refused
            **overrides,
        }

    def _load(self) -> None:
        config, data = self.directory / "slapd.d", self.directory / "data"
        config.mkdir()
        data.mkdir()
        config_ldif = self.directory / "config.ldif"
        config_ldif.write_text(
            _config(
                self.directory,
                root_password=self.root_password,
                certificate=self.certificate,
                key=self.key,
                ca=self.ca_file,
            )
        )
        subprocess.run([SLAPADD, "-n", "0", "-F", str(config), "-l", str(config_ldif)], check=True, capture_output=True)
        tree = self.directory / "tree.ldif"
        with tree.open("w") as out:
            out.writelines(_tree(self.people, self.reader_password))
        # -q: no consistency checks while loading, as for a bulk import.
        subprocess.run([SLAPADD, "-q", "-n", "1", "-F", str(config), "-l", str(tree)], check=True, capture_output=True)
        tree.unlink()

    def start(self) -> Slapd:
        urls = f"{self.ldaps_uri}/ {self.ldap_uri}/"
        log = (self.directory / "slapd.log").open("ab")
        # -d 0: stay in the foreground (a child of ours, ended by stop()) and log nothing.
        self.process = subprocess.Popen(
            [SLAPD, "-d", "0", "-h", urls, "-F", str(self.directory / "slapd.d")], stdout=log, stderr=log
        )
        log.close()
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.ldaps_port), timeout=1):
                    break
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"slapd did not start: {(self.directory / 'slapd.log').read_text()[-2000:]}")
                time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self.process = None

    def close(self) -> None:
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    # The administrator's changes while it runs (python-ldap, over LDAPS).
    def connection(self, who: str = ADMIN_DN, password: str | None = None):
        import ldap

        conn = ldap.initialize(self.ldaps_uri)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self.ca_file))
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.simple_bind_s(who, self.root_password if password is None else password)
        return conn

    def add_person(self, person: Person) -> Person:
        import ldap.modlist

        conn = self.connection()
        try:
            conn.add_s(person.dn, ldap.modlist.addModlist(_encoded(person.attributes())))
            for group in person.groups:
                self.add_to_group(person.dn, group, conn=conn)
        finally:
            conn.unbind_s()
        self.people.append(person)
        return person

    def modify(self, dn: str, **attributes: list[str] | str | None) -> None:
        """Replace attributes (None or [] deletes one): ``modify(dn, mail="new@example.edu")``."""
        import ldap

        changes = []
        for name, value in attributes.items():
            values = [] if value is None else [value] if isinstance(value, str) else list(value)
            changes.append((ldap.MOD_REPLACE, name, [v.encode() for v in values] or None))
        conn = self.connection()
        try:
            conn.modify_s(dn, changes)
        finally:
            conn.unbind_s()

    def disable(self, dn: str) -> None:
        self.modify(dn, userAccountControl=str(DISABLED))

    def enable(self, dn: str) -> None:
        self.modify(dn, userAccountControl=str(ENABLED))

    def remove(self, dn: str) -> None:
        """Delete an entry (the memberof overlay takes it out of its groups)."""
        conn = self.connection()
        try:
            conn.delete_s(dn)
        finally:
            conn.unbind_s()
        self.people = [p for p in self.people if p.dn != dn]

    def add_to_group(self, dn: str, group: str, *, conn=None) -> None:
        self._group(dn, group, add=True, conn=conn)

    def remove_from_group(self, dn: str, group: str) -> None:
        self._group(dn, group, add=False)

    def _group(self, dn: str, group: str, *, add: bool, conn=None) -> None:
        import ldap

        own = conn is None
        conn = conn or self.connection()
        try:
            conn.modify_s(group, [(ldap.MOD_ADD if add else ldap.MOD_DELETE, "member", [dn.encode()])])
        finally:
            if own:
                conn.unbind_s()


def _encoded(attributes: dict[str, list[str]]) -> dict[str, list[bytes]]:
    return {name: [value.encode() for value in values] for name, values in attributes.items()}
