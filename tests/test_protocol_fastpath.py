"""The front end's fast address parser must agree with aiosmtpd's wherever it applies."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from aiosmtpd.smtp import SMTP
from mailhub.smtp.protocol import _PLAIN_PATH


class _Limits:
    local_part_limit = 0


def slow(arg: str):
    return SMTP._getaddr(_Limits(), arg)


ALPHABET = st.sampled_from(list("ab.-_+@<>()\"\\ \t=[]:;,%!'{}") + ["SIZE=10", "an", "hcm.gov.vn"])


@settings(max_examples=2000, deadline=None)
@given(st.lists(ALPHABET, max_size=14).map("".join))
def test_fast_path_agrees_with_aiosmtpd(arg):
    match = _PLAIN_PATH.match(arg)
    if match:
        address, rest = slow(arg)
        assert match.group(1) == address
        assert match.group(2).split() == (rest or "").split()


def test_fast_path_covers_what_clients_send():
    for arg in ("<an@hcm.gov.vn>", "<an.b+c@q1.hcm.gov.vn> SIZE=5120 BODY=8BITMIME"):
        assert _PLAIN_PATH.match(arg)
