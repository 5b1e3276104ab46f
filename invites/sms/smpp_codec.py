"""SMPP 3.4 wire meanings for :mod:`invites.sms.smpp_gateway`: pure functions, no I/O.

- :func:`classify_smpp_status`: a ``command_status`` → permanent or temporary, one line;
- :func:`parse_receipt`: a delivery receipt (``deliver_sm``) → ``(gateway_id, state, reason)``;
- :func:`encode_parts`: a text → the ``short_message`` of each part, ``data_coding``, ``esm_class``.

Text: the GSM 03.38 default alphabet, unpacked, as ``data_coding`` 0 (our texts have their
diacritics stripped); ``unicode=True``, or a character GSM-7 lacks, is UCS-2 (UTF-16BE) as
``data_coding`` 8. A longer text becomes concatenated parts with a user data header (IEI
0x00, 8-bit reference, ``esm_class`` UDHI): 153 GSM characters or 67 UCS-2 per part, never
cutting an escape sequence or a surrogate pair.
"""
from __future__ import annotations

import random
import re

import smpplib.gsm

# SMPP 3.4 §5.1.3 command_status → (permanent, name, meaning). Permanent: this number or this
# message is refused and the same SMS would be refused again (an unregistered brandname for
# the destination's carrier included: registration takes days, the invitation would be stale).
# Temporary, on purpose: load, SMSC trouble, and bind failures (our configuration: retried
# while an administrator fixes it, as with Twilio's credentials). Unknown codes: temporary.
STATUSES: dict[int, tuple[bool, str, str]] = {
    0x01: (True, "ESME_RINVMSGLEN", "invalid message length"),
    0x0A: (True, "ESME_RINVSRCADR", "invalid source address (is the brandname registered with this carrier?)"),
    0x0B: (True, "ESME_RINVDSTADR", "invalid destination address"),
    0x43: (True, "ESME_RINVESMCLASS", "invalid esm_class"),
    0x48: (True, "ESME_RINVSRCTON", "invalid source address TON"),
    0x49: (True, "ESME_RINVSRCNPI", "invalid source address NPI"),
    0x50: (True, "ESME_RINVDSTTON", "invalid destination address TON"),
    0x51: (True, "ESME_RINVDSTNPI", "invalid destination address NPI"),
    0x65: (True, "ESME_RX_P_APPN", "permanent application error at the SMSC"),
    0x66: (True, "ESME_RX_R_APPN", "message rejected by the SMSC"),
    0x04: (False, "ESME_RINVBNDSTS", "the SMSC says we are not bound"),
    0x08: (False, "ESME_RSYSERR", "system error at the SMSC"),
    0x0D: (False, "ESME_RBINDFAIL", "check sms.smpp_system_id and sms.smpp_password"),
    0x0E: (False, "ESME_RINVPASWD", "wrong password: check sms.smpp_password"),
    0x0F: (False, "ESME_RINVSYSID", "unknown system_id: check sms.smpp_system_id"),
    0x14: (False, "ESME_RMSGQFUL", "message queue full at the SMSC"),
    0x45: (False, "ESME_RSUBMITFAIL", "submit_sm failed at the SMSC"),
    0x58: (False, "ESME_RTHROTTLED", "throttled: more messages than the SMSC allows us"),
    0x64: (False, "ESME_RX_T_APPN", "temporary application error at the SMSC"),
}
# message_state TLV (§5.3.2.35) → the stat word of the receipt text (Appendix B).
MESSAGE_STATES = {1: "ENROUTE", 2: "DELIVRD", 3: "EXPIRED", 4: "DELETED", 5: "UNDELIV", 6: "ACCEPTD",
                  7: "UNKNOWN", 8: "REJECTD"}
STAT_STATES = {"DELIVRD": "delivered", "ENROUTE": "sent", "ACCEPTD": "sent", "UNDELIV": "failed",
               "EXPIRED": "failed", "REJECTD": "failed", "DELETED": "failed", "UNKNOWN": "failed"}
_RECEIPT_FIELD = re.compile(r"(?:^|\s)(id|stat|err):(\S+)", re.IGNORECASE)
GSM, UCS2, UDHI = 0x00, 0x08, 0x40


def classify_smpp_status(status: int) -> tuple[bool, str]:
    """``(permanent, reason)`` for a ``command_status`` the SMSC answered (not 0)."""
    permanent, name, meaning = STATUSES.get(status, (False, "unknown command_status", "error from the SMSC"))
    return permanent, f"{meaning} ({name} 0x{status:02X})"


def parse_receipt(text: bytes, receipted_message_id: bytes | str | None = None,
                  message_state: int | None = None) -> tuple[str, str, str] | None:
    """``(gateway_id, state, reason)`` of a delivery receipt, or None when unreadable.

    The TLVs ``receipted_message_id`` and ``message_state`` win over the text
    ``id:… stat:… err:…`` (SMPP 3.4 Appendix B, which the spec calls vendor-specific).
    ``reason`` is ``""`` unless failed: ``"stat:UNDELIV err:069"``.
    """
    fields: dict[str, str] = {}
    for key, value in _RECEIPT_FIELD.findall(text.decode("latin-1")):
        fields.setdefault(key.lower(), value)
    if isinstance(receipted_message_id, bytes):
        receipted_message_id = receipted_message_id.decode("latin-1")
    gateway_id = (receipted_message_id or "").strip("\0 ") or fields.get("id", "")
    stat = MESSAGE_STATES.get(message_state or 0) or fields.get("stat", "").upper()
    state = STAT_STATES.get(stat)
    if not gateway_id or state is None:
        return None
    err = fields.get("err", "")
    return gateway_id, state, (f"stat:{stat} err:{err}" if err else f"stat:{stat}") if state == "failed" else ""


def encode_parts(text: str, unicode: bool) -> tuple[list[bytes], int, int]:
    """``(short_messages, data_coding, esm_class)`` for ``text`` (3GPP TS 23.040 §9.2.3.24.1)."""
    encoded = b""
    if not unicode:
        try:
            encoded = smpplib.gsm.gsm_encode(text)
        except UnicodeError:  # a character GSM-7 lacks: UCS-2 rather than a '?'
            unicode = True
    coding, single, size = (UCS2, 140, 134) if unicode else (GSM, 160, 153)
    if unicode:
        encoded = text.encode("utf-16-be")
    if len(encoded) <= single:
        return [encoded], coding, 0
    chunks, start = [], 0
    while start < len(encoded):
        end = min(start + size, len(encoded))
        if end < len(encoded) and coding == GSM and encoded[end - 1] == 0x1B:
            end -= 1  # an escape stays with its character
        elif end < len(encoded) and coding == UCS2 and 0xD8 <= encoded[end - 2] <= 0xDB:
            end -= 2  # a surrogate pair stays whole
        chunks.append(encoded[start:end])
        start = end
    if len(chunks) > 255:
        raise ValueError(f"text too long for one SMS: {len(chunks)} parts (at most 255)")
    ref = random.randrange(256)
    return [bytes([5, 0, 3, ref, len(chunks), n]) + chunk for n, chunk in enumerate(chunks, 1)], coding, UDHI


