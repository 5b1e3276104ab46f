"""Phone numbers as a secretary types them, turned into E.164 for the SMS gateways.

Validation is Google's libphonenumber metadata (the ``phonenumbers`` package):
a number is accepted only when ``is_valid_number`` says so, which for Viet Nam
means a 10-digit ``0…`` number with a prefix in use — mobile 03x, 05x, 07x,
08x, 09x, landline 02xx. The 11-digit mobile numbers (016x, 012x, …) were
moved to 03x/07x/08x/05x in 2018 and are rejected, not guessed at.

What we check ourselves, before ``phonenumbers`` sees the text: only digits,
spaces, ``. - ( ) /`` and one leading ``+`` are allowed. ``phonenumbers`` would
otherwise read letters as a keypad word (``0912abc678`` → ``0912222678``) and
``ext``/``x`` as an extension, and an SMS cannot go to either.
"""
from __future__ import annotations

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberType, ValidationResult

_ALLOWED_PUNCTUATION = frozenset(".-()/")
_SMS_TYPES = frozenset({PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE_OR_MOBILE})
_WHY_NOT_POSSIBLE = {
    ValidationResult.TOO_SHORT: "too short",
    ValidationResult.TOO_LONG: "too long",
    ValidationResult.INVALID_LENGTH: "wrong number of digits",
    ValidationResult.INVALID_COUNTRY_CODE: "unknown country code",
}


class PhoneError(ValueError):
    """A phone number that cannot be used. The message names the input and why,
    in English; the caller adds the Vietnamese text for the secretary."""


def normalise_phone(text: str, region: str = "VN") -> str:
    """The E.164 form (``+84912345678``) of ``text``.

    Trusts nothing about ``text``. Accepts local numbers (``0912 345 678``,
    ``(028) 3829 6052``), the country code with or without ``+``
    (``84912345678``) and any spacing with dots, dashes or non-breaking spaces.
    ``region`` is the ISO 3166 code used for numbers without a country code.
    Raises :class:`PhoneError` for letters, an extension, an empty text, or
    anything ``phonenumbers`` does not hold to be a valid number.
    """
    stripped = text.strip()
    if not stripped:
        raise PhoneError(f"phone number {text!r} is empty")
    for i, ch in enumerate(stripped):
        ok = (ch.isascii() and ch.isdigit()) or ch.isspace() or ch in _ALLOWED_PUNCTUATION
        if not ok and not (ch == "+" and i == 0):
            raise PhoneError(f"phone number {text!r} has an unexpected character {ch!r}")
    try:
        number = phonenumbers.parse(stripped, region)
    except NumberParseException:
        raise PhoneError(f"phone number {text!r} does not read as a phone number") from None
    if not phonenumbers.is_valid_number(number):
        reason = _WHY_NOT_POSSIBLE.get(
            phonenumbers.is_possible_number_with_reason(number),
            "not a number in use (wrong prefix or length)")
        raise PhoneError(f"phone number {text!r} is {reason}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def is_mobile(e164: str) -> bool:
    """Whether an SMS can reach ``e164``: its type is MOBILE, or
    FIXED_LINE_OR_MOBILE where the metadata cannot tell (e.g. the US).

    Expects the output of :func:`normalise_phone`; raises :class:`PhoneError`
    if it is not an international number at all, and returns False for a
    number ``phonenumbers`` does not know to be valid.
    """
    if e164.startswith("+84") and 8 <= len(e164) <= 14 and e164[3:].isdigit() and e164[3] != "0":
        # A Vietnamese number in E.164 is what parse() would read, without its cost (a
        # meeting of 10,000 asks 10,000 times; the tests compare both ways).
        number = phonenumbers.PhoneNumber(country_code=84, national_number=int(e164[3:]))
    else:
        try:
            number = phonenumbers.parse(e164, None)
        except NumberParseException:
            raise PhoneError(f"phone number {e164!r} is not in E.164 form") from None
    return phonenumbers.number_type(number) in _SMS_TYPES
