"""What the console shows of each official domain's DKIM keys: the key files (type, size,
public-key fingerprint, date, permissions) and the DNS records to publish, exactly as
:func:`mailhub.dkimkeys.dns_records` (and so ``mailhub dkim dns``) gives them.

Nothing private leaves this module: only public keys are hashed and printed. Reads the key
files on every call (about 35 ms per RSA key), so run it in a worker thread; a new key made
by ``mailhub init`` shows up without a restart.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from mailhub.config import Config
from mailhub.dkimkeys import key_paths, canonical_domain, dns_records, load_domain_keys
from mailhub.errors import ConfigError


@dataclass(frozen=True)
class KeyFile:
    kind: str  # "RSA" or "Ed25519"
    selector: str  # the s= value its signatures carry
    path: str
    bits: int
    fingerprint: str  # "SHA256:<base64>" of the public key (DER SubjectPublicKeyInfo), as OpenSSH writes
    modified: datetime  # keys are never rewritten, so this is when the key was made
    mode: str  # "0600"
    private_to_owner: bool  # no access for group or others


@dataclass(frozen=True)
class OtherKey:
    """A key file in the domain's folder that the configured selector does not use (an old
    selector kept while its DNS record is still published after a rotation)."""

    name: str
    modified: datetime


@dataclass(frozen=True)
class DomainDkim:
    domain: str  # as configured
    d: str  # the d= value (IDNA A-label)
    selector: str
    ed25519: bool
    keys: list[KeyFile] = field(default_factory=list)
    records: list[str] = field(default_factory=list)
    others: list[OtherKey] = field(default_factory=list)
    error: str = ""  # why the keys could not be read (missing: run `mailhub init`)


def fingerprint(public_key) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return "SHA256:" + base64.b64encode(hashlib.sha256(der).digest()).decode("ascii").rstrip("=")


def _modified(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, timezone.utc)


def _key_file(kind: str, selector: str, path: Path, key) -> KeyFile:
    mode = path.stat().st_mode & 0o777
    bits = key.key_size if kind == "RSA" else 256
    return KeyFile(kind, selector, str(path), bits, fingerprint(key.public_key()), _modified(path),
                   f"{mode:04o}", not mode & 0o077)


def domain_dkim(config: Config, domain: str) -> DomainDkim:
    selector, ed25519, keys_dir = config.dkim.selector, config.dkim.ed25519, config.dkim_keys_dir
    try:
        d = canonical_domain(domain)
        keys = load_domain_keys(keys_dir, domain, selector, ed25519)
        rsa_path, ed_path = key_paths(keys_dir, domain, selector)
        files = [_key_file("RSA", keys.selector, rsa_path, keys.rsa_key)]
        if keys.ed25519_key is not None:
            files.append(_key_file("Ed25519", keys.ed25519_selector, ed_path, keys.ed25519_key))
        records = dns_records(keys_dir, domain, selector, ed25519)
    except (ConfigError, OSError) as exc:
        return DomainDkim(domain, domain, selector, ed25519, error=str(exc))
    used = {rsa_path.name, ed_path.name}
    others = [OtherKey(p.name, _modified(p)) for p in sorted(rsa_path.parent.glob("*.pem"))
              if p.name not in used and not p.name.startswith(".")]
    return DomainDkim(domain, d, selector, ed25519, files, records, others)


def all_domains_dkim(config: Config) -> list[DomainDkim]:
    return [domain_dkim(config, domain) for domain in config.domains.official]


def name_and_value(record: str) -> tuple[str, str]:
    """A zone-file TXT line of :func:`dns_records` as a DNS provider's web form wants it: the
    name and the one value (its quoted strings joined, RFC 6376 §3.6.2.2)."""
    name, _, rdata = record.partition(" IN TXT ")
    return name, "".join(rdata.strip("() ").split('"')[1::2])
