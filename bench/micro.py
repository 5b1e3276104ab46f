"""Micro-benchmark: µs per call of the data-stage policies and of DKIM signing.

Prints figures; it is not a test and asserts nothing about them.

The message is the one ``bench/relay.py`` sends (5 KB, Thunderbird-like: RFC 2047
From/To/Subject, Vietnamese UTF-8 ``format=flowed`` body with trailing spaces and a
"-- " signature), after :func:`mailhub.cleanup.cleanup` (Received added), signed
with a fresh RSA-2048 key. The directory holds 1,000 officials, as a read-only
mapping like :mod:`mailhub.directory_cache` hands out; its name index is built once
before timing (the front end does that when it loads a snapshot).

Every timed policy call gets its own freshly parsed ``Message`` (parsed as
:mod:`mailhub.submission` does, ``BytesHeaderParser`` with ``compat32``; the parsing
is not timed), so nothing one call memoises on the header object helps the next.

Run: ``.venv/bin/python bench/micro.py [--rounds 5] [--calls 2000]``. Each figure is
the best of the rounds (the least disturbed by other processes), in CPU µs per call (``time.process_time``).
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import platform
import statistics
import sys
import tempfile
import time
import types
from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mailhub import signing
from mailhub.cleanup import TraceInfo, cleanup, split_message
from mailhub.config import (
    ClassificationConfig,
    DomainsConfig,
    LimitsConfig,
    PolicySettings,
)
from mailhub.dkimkeys import ensure_domain_keys, load_domain_keys
from mailhub.signing import DkimSigner
from policies.context import PolicyContext, Sender
from policies.headers import index_directory
from policies.registry import POLICIES
from policies.runner import evaluate

DOMAIN = "hcm.gov.vn"


class _InstantKey:
    """Stands in for the private key: its signature is 256 zero octets, at once."""

    def sign(self, digest: bytes) -> bytes:
        return bytes(256)


def _relay_module() -> types.ModuleType:
    """bench/relay.py, for its message (importing it starts nothing)."""
    spec = importlib.util.spec_from_file_location("bench_relay", Path(__file__).with_name("relay.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RELAY = _relay_module()

_SURNAMES = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng"]
_MIDDLE = ["Văn", "Thị", "Minh", "Hữu", "Đức", "Thanh", "Ngọc", "Quốc", "Hoài", "Gia"]
_GIVEN = ["An", "Bình", "Châu", "Dũng", "Giang", "Hà", "Khánh", "Linh", "Phúc", "Tâm"]


def directory(size: int = 1000) -> types.MappingProxyType:
    """``size`` officials with Vietnamese names, the sender and the recipient among them."""
    names = {RELAY.SENDER: RELAY.SENDER_NAME, RELAY.RCPT: RELAY.RCPT_NAME}
    i = 0
    while len(names) < size:
        name = f"{_SURNAMES[i % 10]} {_MIDDLE[i // 10 % 10]} {_GIVEN[i // 100 % 10]}"
        names[f"cb{i:04d}@q{i % 24 + 1}.{DOMAIN}"] = name
        i += 1
    return types.MappingProxyType(names)


def best_us(fn, args_list, rounds: int) -> float:
    """Best over ``rounds`` of the mean µs per call of ``fn(*args)`` over ``args_list``
    (a list, or a function making a new list for each round)."""
    best = float("inf")
    for _ in range(rounds):
        batch = args_list() if callable(args_list) else args_list
        t0 = time.process_time()
        for args in batch:
            fn(*args)
        best = min(best, (time.process_time() - t0) / len(batch) * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--only", choices=("policies", "dkim"), help="time only one part")
    args = parser.parse_args(argv)

    parts = RELAY.message_parts()
    raw = [RELAY.make_message(parts, "micro", 100000 + i) for i in range(args.calls)]
    settings = PolicySettings(DomainsConfig(official=(DOMAIN,), subdomains_of=(DOMAIN,)),
                              LimitsConfig(), ClassificationConfig())
    names = directory()
    index_directory(names)
    sender = Sender(login=RELAY.SENDER, full_name=RELAY.SENDER_NAME, unit="STTTT",
                    may_send_as=frozenset({RELAY.SENDER}))

    def contexts() -> list[tuple[PolicyContext]]:
        return [(PolicyContext(
            stage="data", sender=sender, client_ip="127.0.0.1", mail_from=RELAY.SENDER,
            rcpt_tos=(RELAY.RCPT,), size=len(m), directory_names=names, settings=settings,
            headers=BytesHeaderParser(policy=compat32).parsebytes(split_message(m)[0])),)
            for m in raw]

    stage = [(name, POLICIES["data"][name]) for name in POLICIES["data"]]
    for ctx, in contexts()[:3]:  # the benchmark message must pass, or the figures mean nothing
        verdict = evaluate(stage, ctx)
        assert not verdict.refused, verdict.smtp_reply()

    print(f"mailhub micro-benchmark: {len(raw[0])}-byte message, {len(names)} officials, "
          f"best of {args.rounds} rounds x {args.calls} calls; Python {platform.python_version()}")
    if args.only != "dkim":
        print("\ndata stage (µs per call, fresh parsed header object each call)")
        for name, policy in stage:
            print(f"  {name:<22} {best_us(policy, contexts, args.rounds):8.1f}")
        whole = best_us(lambda c: evaluate(stage, c), contexts, args.rounds)
        print(f"  {'evaluate (all four)':<22} {whole:8.1f}")
    if args.only == "policies":
        return 0

    with tempfile.TemporaryDirectory() as tmp:
        ensure_domain_keys(Path(tmp), DOMAIN, "mailhub", ed25519=True)
        rsa = load_domain_keys(Path(tmp), DOMAIN, "mailhub", ed25519=False)
        both = load_domain_keys(Path(tmp), DOMAIN, "mailhub", ed25519=True)
    when = datetime.now(timezone.utc)
    cleaned = []
    for i, m in enumerate(raw[: max(1, args.calls // 4)]):
        trace = TraceInfo(helo="may-tram", client_ip="127.0.0.1", hostname="mailhub.bench",
                          queue_id=f"q{i:08d}", tls="TLSv1.3 TLS_AES_256_GCM_SHA384",
                          authenticated=True)
        cleaned.append(cleanup(m, trace, message_id_domain=DOMAIN, when=when)[0])
    body = split_message(cleaned[0])[1]

    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.asymmetric.utils import Prehashed
    from cryptography.hazmat.primitives.hashes import SHA256

    digest = b"\x01" * 32
    key = rsa.rsa_key
    signer = DkimSigner({DOMAIN: rsa})

    def rsa_alone() -> None:
        key.sign(digest, PKCS1v15(), Prehashed(SHA256()))

    # Interleaved, one call at a time: the machine's speed drifts (other jobs, clock
    # frequency) by as much as the differences looked for; medians of single calls.
    sign_t, rsa_t = [], []
    for _ in range(max(1, args.rounds // 2)):
        for m in cleaned:
            t0 = time.process_time_ns()
            signer.sign(m, DOMAIN)
            t1 = time.process_time_ns()
            rsa_alone()
            t2 = time.process_time_ns()
            sign_t.append(t1 - t0)
            rsa_t.append(t2 - t1)
    # What signing adds to the key step: the same call with a key whose sign() returns
    # at once (not an RSAPrivateKey, so it takes the Ed25519 branch: one call, no padding).
    stub = DkimSigner({DOMAIN: dataclasses.replace(rsa, rsa_key=_InstantKey())})
    print("\nDKIM (µs per call)")
    print(f"  {'RSA-2048 step alone':<22} {statistics.median(rsa_t) / 1e3:8.1f}   (median, interleaved)")
    print(f"  {'sign rsa-sha256':<22} {statistics.median(sign_t) / 1e3:8.1f}   (median, interleaved)")
    print(f"  {'sign, key step stubbed':<22} "
          f"{best_us(lambda m: stub.sign(m, DOMAIN), [(m,) for m in cleaned], args.rounds):8.1f}"
          "   (what signing adds to the key step)")
    print(f"  {'_relaxed_body (5 KB)':<22} "
          f"{best_us(signing._relaxed_body, [(body,)] * 2000, args.rounds):8.1f}")
    signer2 = DkimSigner({DOMAIN: both})
    print(f"  {'sign rsa + ed25519':<22} "
          f"{best_us(lambda m: signer2.sign(m, DOMAIN), [(m,) for m in cleaned], args.rounds):8.1f}"
          "   (best-of-rounds mean)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
