"""Envelope addresses and domains, parsed strictly.

An address here is the RFC 5321 §4.1.2 ``Mailbox`` narrowed to what a city mail
system needs, because every construct left out has been used to make one
address mean two things to two programs:

- the local part is a ``Dot-string`` of ASCII ``atext`` (RFC 5321 §4.1.2) without ``%``
  and ``!`` (the ``%`` hack and ``!`` bang paths are old relay routing that some MTAs
  still obey), so no quoted strings (``"a@b"@c``) and no UTF-8 local parts (we do not
  offer SMTPUTF8, RFC 6531);
- no source routes (``@a,@b:user@dom``): RFC 5321 §4.1.1.3 and Appendix C let a server
  decline them;
- the domain is a fully qualified host name, no address literal (``[1.2.3.4]``), no
  trailing dot; a UTF-8 domain is converted to A-labels by IDNA 2008 (RFC 5891) and
  everything is compared lower-case in that ASCII form;
- lengths per RFC 5321 §4.5.3.1: local part 64 octets, domain 255, path 256.

Nothing here does I/O (no DNS): these are pure string checks.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Iterable

import idna

# RFC 5321 §4.1.2 Dot-string of RFC 5322 §3.2.3 atext, minus "%" and "!" (relay
# routing hacks, see module docstring): no leading, trailing or doubled dot.
_ATOM = r"[A-Za-z0-9#$&'*+\-/=?^_`{|}~]+"
_DOT_STRING = re.compile(rf"{_ATOM}(?:\.{_ATOM})*")
_SPACE_OR_CONTROL = re.compile(r"[\x00-\x20\x7f]")
MAX_LOCAL = 64  # RFC 5321 §4.5.3.1.1
MAX_DOMAIN = 253  # RFC 5321 §4.5.3.1.2 gives 255 octets; DNS names are at most 253 characters
MAX_PATH = 254  # RFC 5321 §4.5.3.1.3: 256 octets including the angle brackets


class AddressError(ValueError):
    """An address or domain that this module refuses.

    ``str(exc)`` is a short fixed English phrase (never the input), safe to put in an
    SMTP reply or a log line.
    """


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A parsed address: ``local`` as written, ``domain`` in lower-case A-label form."""

    local: str
    domain: str

    @property
    def address(self) -> str:
        """The canonical form used for every comparison: lower-case, A-label domain."""
        return f"{self.local.lower()}@{self.domain}"


_LDH_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


@functools.lru_cache(maxsize=4096)  # a city has a few hundred domains; idna is slow
def normalise_domain(text: str) -> str:
    """Return ``text`` as a lower-case ASCII domain (A-labels), or raise AddressError.

    Trusts nothing: checks for an address literal, a trailing dot, IDNA 2008 validity
    of every label (which also refuses ``_``, leading/trailing hyphens, ``--`` in
    positions 3-4 unless a valid ``xn--`` A-label, and look-alike full-width letters),
    at least two labels and a top-level label that is not all digits (a bare IP).
    """
    if not text:
        raise AddressError("empty domain")
    if text.startswith("[") or text.endswith("]"):
        raise AddressError("address literals are not accepted")
    if text.endswith("."):
        raise AddressError("trailing dot in domain")
    if len(text) > MAX_DOMAIN:
        raise AddressError("domain too long")
    name = text.lower()
    if not (name.isascii() and all(_plain_ldh(label) for label in name.split("."))):
        try:
            # Lower-case first: IDNA 2008 has no upper-case code points (RFC 5892).
            # uts46=False: no compatibility mapping, so full-width or otherwise mapped
            # look-alikes are refused instead of silently becoming an official name.
            name = idna.encode(name, uts46=False).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            raise AddressError("domain is not a valid host name (IDNA 2008)") from None
    labels = name.split(".")
    if len(labels) < 2:
        raise AddressError("domain is not fully qualified")
    if labels[-1].isdigit():
        raise AddressError("domain looks like an IP address")
    return name


def _plain_ldh(label: str) -> bool:
    """An ASCII letter-digit-hyphen label with no ``--`` in positions 3-4 (RFC 5890
    §2.3.1: those are reserved, ``xn--`` A-labels included; they go through idna)."""
    return _LDH_LABEL.fullmatch(label) is not None and label[2:4] != "--"


def parse_mailbox(text: str) -> Mailbox:
    """Parse one envelope address (with or without ``<>``); raise AddressError.

    The null reverse-path ``<>`` (RFC 5321 §4.5.5) is refused too: it is for bounces,
    which a mail server generates; an official's authenticated submission has a sender.
    """
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    if not text:
        raise AddressError("empty address")
    if len(text) > MAX_PATH:
        raise AddressError("address too long")
    if _SPACE_OR_CONTROL.search(text):
        raise AddressError("space or control character in address")
    if text.startswith("@") or ":" in text or "," in text:
        raise AddressError("source routes are not accepted")
    if '"' in text or "\\" in text:
        raise AddressError("quoted local parts are not accepted")
    if "[" in text or "]" in text:
        raise AddressError("address literals are not accepted")
    if "!" in text:
        raise AddressError("bang paths are not accepted")
    if "%" in text:
        raise AddressError("percent-hack addresses are not accepted")
    if text.count("@") != 1:
        raise AddressError("an address holds exactly one @")
    local, _, domain = text.partition("@")
    if not local:
        raise AddressError("empty local part")
    if len(local) > MAX_LOCAL:
        raise AddressError("local part too long")
    if not _DOT_STRING.fullmatch(local):
        raise AddressError("local part is not an RFC 5321 Dot-string")
    return Mailbox(local, normalise_domain(domain))


def canonical_domain(domain: str) -> str:
    """``domain`` in A-label form, or lower-cased ASCII-safe as is if it is invalid."""
    try:
        return normalise_domain(domain)
    except AddressError:
        return domain.lower().encode("ascii", "replace").decode("ascii")


def canonical(text: str) -> str | None:
    """The canonical form of ``text`` (see :attr:`Mailbox.address`), or None if invalid."""
    if len(text) > MAX_PATH + 2:
        return None  # too long even without its <>; and not kept in the cache below
    return _canonical(text)


@functools.lru_cache(maxsize=4096)  # the rules ask for the same few addresses all day
def _canonical(text: str) -> str | None:
    try:
        return parse_mailbox(text).address
    except AddressError:
        return None


def canonical_set(addresses: Iterable[str]) -> frozenset[str]:
    """Canonical forms of ``addresses``; an unparseable one is kept lower-cased as is
    (it can then only match an identical string, never a parsed address)."""
    return frozenset(canonical(a) or a.lower() for a in addresses)


@functools.lru_cache(maxsize=32)
def _official(official: tuple[str, ...], subdomains_of: tuple[str, ...]
              ) -> tuple[frozenset[str], tuple[tuple[str, ...], ...]]:
    def norm(domain: str) -> str:
        try:
            return normalise_domain(domain)
        except AddressError:
            # A bad configured domain can never equal a parsed (valid) one: it then
            # matches nothing, which fails closed. check_domains() reports it at load.
            return domain.lower()

    return (frozenset(norm(d) for d in official),
            tuple(tuple(norm(d).split(".")) for d in subdomains_of))


def is_official(domain: str, domains_cfg) -> bool:
    """Is ``domain`` (already normalised by :func:`normalise_domain`) official?

    Official means equal to one of ``domains_cfg.official``, or a strict subdomain, label
    by label, of one of ``domains_cfg.subdomains_of``: ``so.hochiminhcity.gov.vn`` is,
    ``evilhochiminhcity.gov.vn`` and ``hochiminhcity.gov.vn.evil.com`` are not.
    """
    official, parents = _official(tuple(domains_cfg.official), tuple(domains_cfg.subdomains_of))
    if domain in official:
        return True
    labels = tuple(domain.split("."))
    return any(len(labels) > len(p) and labels[-len(p):] == p for p in parents)


def official_mailbox(text: str, domains_cfg) -> Mailbox | None:
    """The parsed address if it is valid and in an official domain, else None."""
    try:
        box = parse_mailbox(text)
    except AddressError:
        return None
    return box if is_official(box.domain, domains_cfg) else None


def check_domains(domains_cfg, source: str) -> None:
    """Raise ConfigError naming the key if a configured domain is not a valid host name.

    Meant for :mod:`mailhub.config` to call at load time (an invalid official domain
    would otherwise silently match no sender at all).
    """
    from mailhub.errors import ConfigError

    for key in ("official", "subdomains_of"):
        for i, domain in enumerate(getattr(domains_cfg, key)):
            try:
                normalise_domain(domain)
            except AddressError as exc:
                raise ConfigError(f"{source}: domains.{key}[{i}]: {exc}: {domain!r}") from None
