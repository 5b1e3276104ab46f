"""Document signature checks: how long :func:`mailhub.signatures.examine.examine` takes
per submission, the work the relay adds (in a worker thread, before the 250) for mail
to an address of ``[[documents.rules]]``.

Messages are made with the test PKI of ``tests/signing_pki.py`` (EC P-256 signers, a
trust root folder): a signed PDF, an S/MIME message, S/MIME with a signed
PDF inside, an unsigned PDF, a tampered PDF, a signed PDF with a large page, plain
text. Each is examined ``--runs`` times after one warm-up; the median, the 90th
percentile and the maximum are printed. Prints figures; asserts nothing.

Run: ``.venv/bin/python bench/documents.py [--runs 30] [--big-mb 10]``.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def messages(big_mb: int):
    from tests.signing_pki import TestPki, mail_with_pdf, signed_pdf, smime_mail, tampered, unsigned_pdf

    p = TestPki.create()
    out = {
        "signed PDF": mail_with_pdf(signed_pdf(p.leaf_cert, p.leaf_key)),
        "S/MIME": smime_mail("Kính gửi Ủy ban nhân dân thành phố", p.leaf_cert, p.leaf_key),
        "S/MIME + signed PDF": smime_mail("Kính gửi", p.leaf_cert, p.leaf_key,
                                          pdf=signed_pdf(p.leaf_cert, p.leaf_key)),
        "unsigned PDF": mail_with_pdf(unsigned_pdf()),
        "tampered PDF": mail_with_pdf(tampered(signed_pdf(p.leaf_cert, p.leaf_key))),
        "untrusted PDF": mail_with_pdf(signed_pdf(p.stranger_cert, p.stranger_key)),
        f"signed PDF, large page": mail_with_pdf(signed_pdf(p.leaf_cert, p.leaf_key,
                                                                  text="Công văn " * (big_mb * 8_000))),
        "plain text": (b"From: an@hcm.gov.vn\r\nTo: vanban@ubnd.hcm.gov.vn\r\nSubject: x\r\n\r\n"
                       + "Kính gửi\r\n".encode() * 200),
    }
    return out, p


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--big-mb", type=int, default=10, help="about the size of the message with a large PDF, in MB")
    args = parser.parse_args(argv)

    from mailhub.signatures.examine import examine
    from mailhub.signatures.trust import load_trust_roots

    built, pki = messages(args.big_mb)
    with tempfile.TemporaryDirectory() as folder:
        roots = load_trust_roots(pki.write_roots(Path(folder)))
    print(f"# Document signature checks, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {platform.node()}, {_cpu()}, Python {platform.python_version()}")
    print(f"command: {' '.join([sys.executable, *sys.argv])}")
    print("| message | size KB | outcome | median ms | p90 ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, data in built.items():
        check = examine(data, roots)  # warm-up
        times = []
        for _ in range(args.runs):
            t = time.perf_counter()
            examine(data, roots)
            times.append(1000 * (time.perf_counter() - t))
        times.sort()
        p90 = times[min(len(times) - 1, int(0.9 * len(times)))]
        print(f"| {name} | {len(data) // 1024} | {check.outcome.value} | {statistics.median(times):.1f} "
              f"| {p90:.1f} | {times[-1]:.1f} |")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
