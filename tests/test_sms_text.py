"""Phone numbers (mailhub.phones) and SMS text and segments (invites.smstext).

Segment rules: 3GPP TS 23.038 §6.2.1 (alphabet), TS 23.040 §9.2.3.24.1 (UDH).
"""
import unicodedata

import pytest

from mailhub.phones import PhoneError, is_mobile, normalise_phone
from invites.smstext import (
    GSM7_BASIC,
    GSM7_EXTENSION,
    SmsEncoding,
    encoding_of,
    prepare_sms,
    shorten_to_fit,
    strip_diacritics,
)

# --- phones -------------------------------------------------------------------

@pytest.mark.parametrize("typed, e164, mobile", [
    ("0912 345 678", "+84912345678", True),           # Vinaphone, as usually written
    ("+84 912345678", "+84912345678", True),
    ("84912345678", "+84912345678", True),            # country code without +
    ("0084 912 345 678", "+84912345678", True),       # international prefix from VN
    ("0912.345.678", "+84912345678", True),
    ("0912-345-678", "+84912345678", True),
    ("  0912\u00a0345\u00a0678 ", "+84912345678", True),  # pasted with NBSP
    ("+84 (0) 912 345 678", "+84912345678", True),
    ("0321 234 567", "+84321234567", True),           # 03x (ex-016x Viettel)
    ("0561 234 567", "+84561234567", True),           # 05x
    ("0701 234 567", "+84701234567", True),           # 07x (ex-012x MobiFone)
    ("0812 345 678", "+84812345678", True),           # 08x
    ("0983 456 789", "+84983456789", True),           # 09x
    ("(028) 3829 6052", "+842838296052", False),      # HCMC landline
    ("024 3825 3154", "+842438253154", False),        # Hanoi landline
    ("+84 28 3829 6052", "+842838296052", False),
    ("1900 1234", "+8419001234", False),              # hotline: valid, no SMS
    ("+1 650 253 0000", "+16502530000", True),        # US: FIXED_LINE_OR_MOBILE
    ("+44 7911 123456", "+447911123456", True),
])
def test_valid_numbers(typed, e164, mobile):
    assert normalise_phone(typed) == e164
    assert is_mobile(e164) is mobile


@pytest.mark.parametrize("typed, why", [
    ("01683456789", "not a number in use"),           # 11-digit, migrated in 2018
    ("0168 345 6789", "not a number in use"),
    ("0123 456 7890", "not a number in use"),
    ("0912 345", "not a number in use"),              # too few digits for a VN number
    ("+84 12", "too short"),
    ("0912 345 678 901", "too long"),
    ("0212 345 678", "not a number in use"),          # no such prefix
    ("0912abc678", "unexpected character 'a'"),       # not read as a keypad word
    ("0912 345 678 ext 5", "unexpected character 'e'"),
    ("++84912345678", "unexpected character '+'"),
    ("abc", "unexpected character 'a'"),
    ("", "empty"),
    ("   ", "empty"),
    ("+84", "does not read as a phone number"),
    ("+999 1234567", "does not read as a phone number"),
])
def test_invalid_numbers_name_input_and_reason(typed, why):
    with pytest.raises(PhoneError) as caught:
        normalise_phone(typed)
    assert isinstance(caught.value, ValueError)
    assert repr(typed) in str(caught.value)
    assert why in str(caught.value)


def test_region_applies_to_local_numbers_only():
    assert normalise_phone("020 7946 0018", region="GB") == "+442079460018"
    assert normalise_phone("+84 912 345 678", region="GB") == "+84912345678"


def test_is_mobile_wants_e164():
    with pytest.raises(PhoneError, match="'0912345678' is not in E.164"):
        is_mobile("0912345678")


def test_is_mobile_reads_vietnamese_numbers_as_the_library_parses_them():
    """Vietnamese numbers skip phonenumbers.parse (a meeting of 10,000 asks 10,000 times):
    every prefix and length must get the answer the parsed number gets."""
    import random

    import phonenumbers

    rng = random.Random(84)
    numbers = {f"+84{p}{rng.randrange(10 ** rest):0{rest}d}" for p in range(1, 100) for rest in range(4, 10)
               for _ in range(3)}
    mobiles = 0
    for e164 in sorted(numbers):
        slow = phonenumbers.number_type(phonenumbers.parse(e164, None)) in (
            phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE_OR_MOBILE)
        assert is_mobile(e164) is slow, e164
        mobiles += slow
    assert 100 < mobiles < len(numbers)  # both answers were seen


# --- strip_diacritics -----------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("Giấy mời họp: Đánh giá công tác chuyển đổi số quý III",
     "Giay moi hop: Danh gia cong tac chuyen doi so quy III"),
    ("Ủy ban nhân dân Thành phố Hồ Chí Minh", "Uy ban nhan dan Thanh pho Ho Chi Minh"),
    ("Sở Thông tin và Truyền thông đề nghị đồng chí đến đúng giờ",
     "So Thong tin va Truyen thong de nghi dong chi den dung gio"),
    ("ĐỊA ĐIỂM: PHÒNG HỌP SỐ 2, ĐƯỜNG LÊ THÁNH TÔN", "DIA DIEM: PHONG HOP SO 2, DUONG LE THANH TON"),
    ("đ Đ đĐ", "d D dD"),
    # every vowel with no tone and with each of the five tone marks
    ("a à á ả ã ạ ă ằ ắ ẳ ẵ ặ â ầ ấ ẩ ẫ ậ", "a a a a a a a a a a a a a a a a a a"),
    ("e è é ẻ ẽ ẹ ê ề ế ể ễ ệ i ì í ỉ ĩ ị", "e e e e e e e e e e e e i i i i i i"),
    ("o ò ó ỏ õ ọ ô ồ ố ổ ỗ ộ ơ ờ ớ ở ỡ ợ", "o o o o o o o o o o o o o o o o o o"),
    ("u ù ú ủ ũ ụ ư ừ ứ ử ữ ự y ỳ ý ỷ ỹ ỵ", "u u u u u u u u u u u u y y y y y y"),
    ("À Á Ả Ã Ạ Ă Ằ Ắ Ẳ Ẵ Ặ Â Ầ Ấ Ẩ Ẫ Ậ", "A A A A A A A A A A A A A A A A A"),
    ("È É Ẻ Ẽ Ẹ Ê Ề Ế Ể Ễ Ệ Ì Í Ỉ Ĩ Ị", "E E E E E E E E E E E I I I I I"),
    ("Ò Ó Ỏ Õ Ọ Ô Ồ Ố Ổ Ỗ Ộ Ơ Ờ Ớ Ở Ỡ Ợ", "O O O O O O O O O O O O O O O O O"),
    ("Ù Ú Ủ Ũ Ụ Ư Ừ Ứ Ử Ữ Ự Ỳ Ý Ỷ Ỹ Ỵ", "U U U U U U U U U U U Y Y Y Y Y"),
    # the same sentence typed with decomposed (NFD) accents, as some keyboards do
    (unicodedata.normalize("NFD", "Thời gian: 8 giờ, thứ Hai"), "Thoi gian: 8 gio, thu Hai"),
    # typographic punctuation from Word and phone keyboards
    ("“Chuyển đổi số” – ‘năm 2025’ — xem tiếp…", '"Chuyen doi so" - \'nam 2025\' - xem tiep...'),
    ("08:00\u00a0–\u00a011:30", "08:00 - 11:30"),
    ("Phòng\u200b họp\ufeff", "Phong hop"),
    ("Ngày 15/03/2025, 08:00 - 11:30", "Ngay 15/03/2025, 08:00 - 11:30"),
    ("Hẹn gặp 😀 ở 会议室", "Hen gap 😀 o 会议室"),   # not Latin: left for UCS-2
])
def test_strip_diacritics(text, expected):
    assert strip_diacritics(text) == expected


def test_stripped_vietnamese_is_all_gsm7():
    alphabet = "aàáảãạăằắẳẵặâầấẩẫậeèéẻẽẹêềếểễệiìíỉĩịoòóỏõọôồốổỗộơờớởỡợuùúủũụưừứửữựyỳýỷỹỵđ"
    text = strip_diacritics(alphabet + alphabet.upper())
    assert set(text) <= GSM7_BASIC
    assert encoding_of(text).name == "GSM-7"


# --- encoding_of --------------------------------------------------------------

def test_alphabet_tables_have_the_spec_sizes():
    assert len(GSM7_BASIC) == 127          # 128 positions less ESC
    assert GSM7_EXTENSION == set("\f^{}\\[~]|€")
    assert not GSM7_BASIC & GSM7_EXTENSION


ACCENT = "ạ"      # outside GSM-7: forces UCS-2, one UTF-16 unit
EMOJI = "😀"      # outside the BMP: a surrogate pair


@pytest.mark.parametrize("text, name, segments, units", [
    ("", "GSM-7", 1, 0),
    ("a", "GSM-7", 1, 1),
    ("a" * 160, "GSM-7", 1, 160),
    ("a" * 161, "GSM-7", 2, 161),
    ("a" * 306, "GSM-7", 2, 306),          # 2 x 153
    ("a" * 307, "GSM-7", 3, 307),
    ("a" * 159 + "€", "GSM-7", 2, 161),    # € is ESC + 0x65
    ("a" * 158 + "€", "GSM-7", 1, 160),
    ("[{}]", "GSM-7", 1, 8),
    ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà\n", "GSM-7", 1, 43),
    # 152 + € would straddle two parts: the escape sequence moves to the second
    ("a" * 152 + "€" + "a" * 152, "GSM-7", 3, 306),
    (ACCENT, "UCS-2", 1, 1),
    ("a" * 69 + ACCENT, "UCS-2", 1, 70),
    ("a" * 70 + ACCENT, "UCS-2", 2, 71),
    (ACCENT * 134, "UCS-2", 2, 134),       # 2 x 67
    (ACCENT * 135, "UCS-2", 3, 135),
    (EMOJI, "UCS-2", 1, 2),
    ("a" * 68 + EMOJI, "UCS-2", 1, 70),
    ("a" * 69 + EMOJI, "UCS-2", 2, 71),
    (ACCENT * 66 + EMOJI + ACCENT * 66, "UCS-2", 3, 134),  # no split surrogate pair
    ("Ç" * 160, "GSM-7", 1, 160),          # in the default alphabet
    ("ç" * 10, "UCS-2", 1, 10),            # its lower case is not
])
def test_encoding_of(text, name, segments, units):
    assert encoding_of(text) == SmsEncoding(name, segments, units)


# --- prepare_sms ----------------------------------------------------------------

INVITATION = ("UBND TP.HCM mời họp: Đánh giá chuyển đổi số quý III, 08:00 thứ Ba 15/03/2025, "
              "Phòng họp 2, 86 Lê Thánh Tôn. Trả lời: https://hub.tphcm.gov.vn/r/AQIDBAUG")


def test_typical_invitation_fits_one_segment_once_stripped():
    text, enc = prepare_sms(INVITATION)
    assert text == ("UBND TP.HCM moi hop: Danh gia chuyen doi so quy III, 08:00 thu Ba 15/03/2025, "
                    "Phong hop 2, 86 Le Thanh Ton. Tra loi: https://hub.tphcm.gov.vn/r/AQIDBAUG")
    assert enc == SmsEncoding("GSM-7", 1, len(text))


def test_unicode_option_keeps_diacritics_and_costs_ucs2():
    text, enc = prepare_sms(INVITATION, unicode=True)
    assert text == INVITATION
    assert enc == SmsEncoding("UCS-2", 3, len(INVITATION))


@pytest.mark.parametrize("raw, unicode, expected", [
    ("Họp\r\nlúc 8h", False, "Hop\nluc 8h"),
    ("Họp\rlúc 8h", False, "Hop\nluc 8h"),
    ("Họp\n\n\n  lúc 8h  ", False, "Hop\nluc 8h"),
    ("Họp \t  giao\u00a0ban   tuần", False, "Hop giao ban tuan"),
    ("Họp\x00 giao\x07 ban\x1b\x7f\x85", False, "Hop giao ban"),
    ("  Họp\x0b giao ban\f ", False, "Hop giao ban"),
    ("Họp\x00 giao\tban\r\n", True, "Họp giao ban"),
    ("", False, ""),
])
def test_prepare_sms_cleans_whitespace_and_controls(raw, unicode, expected):
    text, enc = prepare_sms(raw, unicode=unicode)
    assert text == expected
    assert enc == encoding_of(expected)


def test_prepare_sms_reports_ucs2_when_something_cannot_be_stripped():
    text, enc = prepare_sms("Chúc mừng 🎉")
    assert text == "Chuc mung 🎉"
    assert enc == SmsEncoding("UCS-2", 1, 12)


# --- shorten_to_fit -------------------------------------------------------------

FIXED = ('UBND TP.HCM moi du hop "{title}" luc 08:00 15/03/2025 tai Phong hop so 2, '
         '86 Le Thanh Ton. Tra loi: https://hub.tphcm.gov.vn/r/AQIDBAUGBwgJCgsM')
LONG_TITLE = ("Hoi nghi so ket cong tac chuyen doi so 6 thang dau nam va trien khai "
              "nhiem vu trong tam 6 thang cuoi nam 2025")


def test_short_title_is_left_alone():
    assert shorten_to_fit(FIXED, "Giao ban tuan") == FIXED.replace("{title}", "Giao ban tuan")


@pytest.mark.parametrize("segments", [1, 2])
def test_long_title_is_cut_at_a_word_to_fit(segments):
    variable = LONG_TITLE * segments
    out = shorten_to_fit(FIXED, variable, segments=segments)
    assert encoding_of(FIXED.replace("{title}", variable)).segments > segments
    assert encoding_of(out).segments == segments
    before, after = FIXED.split("{title}")
    assert out.startswith(before) and out.endswith(after)
    title = out[len(before):len(out) - len(after)]
    assert title.endswith("...") and variable.startswith(title[:-3])
    assert variable[len(title) - 3] == " "          # cut between words
    # nothing longer would have fitted: one more word overflows
    next_word = variable[:variable.index(" ", len(title) - 2)]
    assert encoding_of(FIXED.replace("{title}", next_word + "...")).segments > segments


@pytest.mark.parametrize("variable, title", [
    ("aaaa bbbb cccc ddd", "aaaa bbbb cccc ddd"),    # 18: fits whole
    ("aaaa bbbb cccc dddd", "aaaa bbbb cccc..."),    # 15 + "...": "d" is half a word
    ("aaaa bbbb ccccc dddd", "aaaa bbbb ccccc..."),  # the room ends at a word's end
    ("aaaa bbbb ccccccccc", "aaaa bbbb..."),
])
def test_cut_keeps_whole_words(variable, title):
    fixed = "{title} " + "x" * 141                     # leaves 18 septets for the title
    assert shorten_to_fit(fixed, variable) == title + " " + "x" * 141


def test_one_long_word_is_cut_inside():
    out = shorten_to_fit("{title} " + "x" * 150, "y" * 40)
    assert out == "y" * 6 + "... " + "x" * 150
    assert encoding_of(out).units == 160


def test_fixed_part_too_long_or_without_placeholder():
    with pytest.raises(ValueError, match="needs 2 SMS, more than 1"):
        shorten_to_fit("{title}" + "x" * 158, "Giao ban")
    with pytest.raises(ValueError, match="placeholder '{title}' not in"):
        shorten_to_fit("Hop luc 8h", "Giao ban")
