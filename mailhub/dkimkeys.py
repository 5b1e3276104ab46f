"""DKIM keys: generation, loading, and the DNS records to publish.

Layout: ``<keys_dir>/<domain>/<selector>.rsa.pem`` and, when Ed25519 is on,
``<selector>.ed25519.pem`` -- unencrypted PKCS#8 PEM, files 0600, folders 0700.
The folder name is the domain's lower-case IDNA A-label (RFC 5891), the same
string that goes into ``d=``, so a Unicode and an A-label spelling of one
domain share one key.
"""

from __future__ import annotations

import base64
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import idna
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key

from mailhub.errors import ConfigError

_Key = TypeVar("_Key", RSAPrivateKey, Ed25519PrivateKey)

# RFC 6376 §3.6.2.2: the TXT RRset of one selector must hold one key record,
# so the Ed25519 key is published under its own selector (as RFC 8463
# Appendix A does) while its file sits next to the RSA key.
ED25519_SELECTOR_SUFFIX = "-ed25519"
RSA_BITS = 2048  # RFC 8301 §3.2: signers SHOULD use at least 2048 bits
TXT_STRING_MAX = 255  # RFC 1035 §3.3, §3.3.14: a TXT <character-string> holds 255 octets


@dataclass(frozen=True)
class DomainKeys:
    """The private keys of one signing domain; loaded once at start.

    The key objects are left out of ``repr`` so a log line or a traceback
    never shows key material.
    """

    domain: str  # IDNA A-label, lower case: the d= value
    selector: str  # the s= value
    rsa_key: RSAPrivateKey = field(repr=False)
    ed25519_key: Ed25519PrivateKey | None = field(default=None, repr=False)

    @property
    def ed25519_selector(self) -> str:
        """The s= value of Ed25519 signatures: ``<selector>-ed25519``."""
        return self.selector + ED25519_SELECTOR_SUFFIX


def canonical_domain(domain: str) -> str:
    """Return ``domain`` as a lower-case IDNA A-label, or raise ConfigError.

    Trusts nothing: the result is used as a folder name, so ``/``, ``..``,
    empty labels (including a trailing dot) and anything IDNA 2008 refuses are
    rejected with a message that names the domain.
    """
    if not domain or "/" in domain or "\\" in domain or ".." in domain:
        raise ConfigError(f"invalid DKIM domain {domain!r}: empty, '/' or '..'")
    if any(not label for label in domain.split(".")):
        raise ConfigError(f"invalid DKIM domain {domain!r}: empty label")
    try:
        return idna.encode(domain, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ConfigError(f"invalid DKIM domain {domain!r}: {exc}") from None


def _check_selector(selector: str) -> str:
    # RFC 6376 §3.1: a selector is one or more dot-separated sub-domain labels;
    # it is also part of a file name here, so the same rules as a domain apply.
    try:
        checked = canonical_domain(selector)
        canonical_domain(selector + ED25519_SELECTOR_SUFFIX)  # a label holds 63 octets
    except ConfigError:
        raise ConfigError(f"invalid DKIM selector {selector!r}") from None
    if checked != selector:
        raise ConfigError(f"invalid DKIM selector {selector!r}: use lower-case ASCII")
    return selector


def key_paths(keys_dir: Path, domain: str, selector: str) -> tuple[Path, Path]:
    """Where a domain's RSA and Ed25519 keys for ``selector`` are kept (whether or not they exist)."""
    folder = Path(keys_dir) / canonical_domain(domain)
    selector = _check_selector(selector)
    return folder / f"{selector}.rsa.pem", folder / f"{selector}.ed25519.pem"


def _make_dir(path: Path) -> None:
    # mkdir's mode is filtered by the umask: set 0700 explicitly on folders we create.
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.chmod(0o700)


def _write_new_key(path: Path, pem: bytes) -> bool:
    """Write ``pem`` to ``path`` unless it exists; True when written.

    The key is written to a 0600 temporary file, fsynced, then hard-linked to
    its name: link() never replaces an existing file (so a concurrent
    ``mailhub init`` cannot overwrite a key) and a crash never leaves a
    half-written key under the real name.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".pem")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
            out.flush()
            os.fsync(out.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        return True
    finally:
        os.unlink(tmp)


def ensure_domain_keys(keys_dir: Path, domain: str, selector: str, ed25519: bool) -> list[Path]:
    """Create the domain's missing key files; return the paths created.

    Idempotent: existing keys are never overwritten (a published DNS record
    depends on them), so a second call returns an empty list.
    """
    rsa_path, ed_path = key_paths(keys_dir, domain, selector)
    _make_dir(Path(keys_dir))
    _make_dir(rsa_path.parent)
    wanted = [(rsa_path, _new_rsa_pem)]
    if ed25519:
        wanted.append((ed_path, _new_ed25519_pem))
    created = []
    for path, make_pem in wanted:
        if not path.exists() and _write_new_key(path, make_pem()):
            created.append(path)
    return created


def _pkcs8(key: RSAPrivateKey | Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _new_rsa_pem() -> bytes:
    return _pkcs8(generate_private_key(public_exponent=65537, key_size=RSA_BITS))


def _new_ed25519_pem() -> bytes:
    return _pkcs8(Ed25519PrivateKey.generate())


def _load_key(path: Path, kind: type[_Key], label: str) -> _Key:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"DKIM key {path} is missing: run `mailhub init`") from None
    except OSError as exc:
        raise ConfigError(f"DKIM key {path} cannot be read: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigError(f"DKIM key {path} is not an unencrypted PEM private key") from None
    if not isinstance(key, kind):
        raise ConfigError(f"DKIM key {path} is not an {label} private key")
    return key


def load_domain_keys(keys_dir: Path, domain: str, selector: str, ed25519: bool) -> DomainKeys:
    """Load the domain's private keys (about 35 ms for RSA: do it once at start)."""
    rsa_path, ed_path = key_paths(keys_dir, domain, selector)
    rsa_key = _load_key(rsa_path, RSAPrivateKey, "RSA")
    if rsa_key.key_size < 1024:  # RFC 8301 §3.2: signers MUST use at least 1024 bits
        raise ConfigError(f"DKIM key {rsa_path} has {rsa_key.key_size} bits; use 2048")
    ed_key = _load_key(ed_path, Ed25519PrivateKey, "Ed25519") if ed25519 else None
    return DomainKeys(canonical_domain(domain), selector, rsa_key, ed_key)


def _txt_rdata(text: str) -> str:
    # RFC 6376 §3.6.2.2: a key record longer than one <character-string> is
    # published as several strings that verifiers concatenate; RFC 1035 §5.1
    # lets parentheses group them on one zone-file line.
    chunks = [text[i : i + TXT_STRING_MAX] for i in range(0, len(text), TXT_STRING_MAX)]
    quoted = " ".join(f'"{chunk}"' for chunk in chunks)
    return quoted if len(chunks) == 1 else f"( {quoted} )"


def dns_records(keys_dir: Path, domain: str, selector: str, ed25519: bool) -> list[str]:
    """Zone-file TXT lines to publish for the domain: RSA under ``<selector>``,
    then, when enabled, Ed25519 under ``<selector>-ed25519``."""
    keys = load_domain_keys(keys_dir, domain, selector, ed25519)
    # RFC 6376 §3.6.1: p= is the base64 of the DER SubjectPublicKeyInfo.
    spki = keys.rsa_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    records = [(keys.selector, f"v=DKIM1; k=rsa; p={base64.b64encode(spki).decode('ascii')}")]
    if keys.ed25519_key is not None:
        # RFC 8463 §4.2: for Ed25519, p= is the bare 32-byte public key.
        raw = keys.ed25519_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        value = f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"
        records.append((keys.ed25519_selector, value))
    return [
        f"{sel}._domainkey.{keys.domain}. IN TXT {_txt_rdata(value)}" for sel, value in records
    ]


def signing_domain(from_domain: str, domains: Iterable[str]) -> str | None:
    """The entry of ``domains`` equal to ``from_domain`` or its closest parent.

    Compared label by label on canonical A-labels, so ``evilhochiminhcity.gov.vn``
    does not match ``hochiminhcity.gov.vn``. ``from_domain`` comes from a message
    and is untrusted: a name that is not a valid domain gives None. Returns the
    entry as spelled in ``domains`` (a key of the caller's mapping).
    """
    try:
        labels = canonical_domain(from_domain.rstrip(".")).split(".")
    except ConfigError:
        return None
    configured = {canonical_domain(d): d for d in domains}
    for start in range(len(labels)):
        match = configured.get(".".join(labels[start:]))
        if match is not None:
            return match
    return None
