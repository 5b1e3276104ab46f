"""DKIM verification helpers for the tests: dkimpy and Debian's Perl Mail::DKIM,
both fed exactly the zone-file lines that `mailhub dkim dns` prints."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import dkim
import pytest

PERL_VERIFIER = Path(__file__).with_name("dkim_verify.pl")


def txt_records(records: list[str]) -> dict[bytes, bytes]:
    """Owner name -> TXT data, the strings joined as a resolver would (RFC 6376 §3.6.2.2)."""
    answers: dict[bytes, bytes] = {}
    for line in records:
        name = line.split()[0].encode()
        assert name not in answers, "one key record per selector name (RFC 6376 §3.6.2.2)"
        answers[name] = "".join(re.findall(r'"([^"]*)"', line)).encode()
    return answers


def dkimpy_verify(message: bytes, records: list[str], idx: int = 0) -> bool:
    answers = txt_records(records)

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes | None:
        return answers.get(name)

    try:
        return dkim.DKIM(message).verify(idx=idx, dnsfunc=dnsfunc)
    except dkim.DKIMException:  # e.g. "body hash mismatch"; dkim.verify() does the same
        return False



def perl_verifier(zone_dir: Path):
    """A function running tests/dkim_verify.pl: returns {algorithm: result} for one
    message; skips the test when Perl Mail::DKIM is not installed."""
    perl = shutil.which("perl")
    if perl is None or subprocess.run(
        [perl, "-MMail::DKIM::Verifier", "-MNet::DNS", "-e1"], capture_output=True
    ).returncode:
        pytest.skip("Perl Mail::DKIM is not installed (Debian: apt install libmail-dkim-perl)")

    def run(message: bytes, records: list[str]) -> dict[str, str]:
        zone = zone_dir / "zone.txt"
        zone.write_text("\n".join(records) + "\n")
        done = subprocess.run([perl, str(PERL_VERIFIER), str(zone)], input=message,
                              capture_output=True, timeout=60, check=True)
        lines = [line.split() for line in done.stdout.decode().splitlines()]
        return {fields[1]: fields[0] for fields in lines if len(fields) > 1}  # "none": {}

    return run


