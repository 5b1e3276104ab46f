"""Data-stage rules on header fields: From/Sender, impersonation, classification."""
from __future__ import annotations

import email.policy
import unicodedata
from dataclasses import replace

import pytest

from mailhub.config import ClassificationConfig
from policies.classification import subject_has_marker
from policies.registry import POLICIES
from tests.test_policies import BOSS, ME, SENDER, SETTINGS, UNIT_BOX, assert_refused, make_ctx, message

header_from_matches = POLICIES["data"]["header_from_matches"]
no_impersonation = POLICIES["data"]["no_impersonation"]
classification = POLICIES["data"]["classification"]
PARSE_POLICIES = [email.policy.compat32, email.policy.SMTP]


def data_ctx(*fields: str, parse_policy=email.policy.SMTP, **kw):
    return make_ctx("data", headers=message(*fields, parse_policy=parse_policy), **kw)


# ---- header_from_matches (RFC 5322 §3.6.2) ----------------------------------------------

@pytest.mark.parametrize("parse_policy", PARSE_POLICIES)
@pytest.mark.parametrize("fields", [
    (),
    ("From: ",),
    (f"From: {ME}", f"From: {ME}"),
    (f"From: {ME}, {BOSS}",),
    (f"From: {BOSS}",),
    (f"From: Nguyễn Văn An <{BOSS}>",),
    (f"From: {ME})<x@evil.example>",),  # CVE-2023-27043: two parsers, two addresses
    (f"From: {ME} <x@evil.example>",),
    (f"From: <{ME}> <x@evil.example>",),
    (f"From: Nguyễn Văn An <{ME}>garbage",),
    (f'From: "unterminated <{ME}>',),
    (f"From: Team: {ME};",),  # a group is not a mailbox
    ("From: undisclosed-recipients:;",),
    ("From: =?utf-8?b?YW4ubmd1eWVuQGhvY2hpbWluaGNpdHkuZ292LnZu?=",),  # encoded address
    ("From: an.nguyen%evil.example@hochiminhcity.gov.vn",),
    ("From: an.nguyen@hochiminhcity.gov.vn.",),
    ('From: "an.nguyen@hochiminhcity.gov.vn"@evil.example',),
    ("From: an.nguyen@hochiminhcity.gov.vn\x00",),
    ("From: Bob\x1b <an.nguyen@hochiminhcity.gov.vn>",),
    (f"From: {ME}", f"Sender: {BOSS}"),
    (f"From: {ME}", f"Sender: {ME}", f"Sender: {ME}"),
    (f"From: {ME}", "Sender: "),
    (f"From: {ME}", f"Sender: {ME}, {BOSS}"),
])
def test_header_from_matches_refuses(fields, parse_policy):
    verdict = header_from_matches(data_ctx(*fields, parse_policy=parse_policy))
    assert_refused(verdict, 550, "5.7.1")


@pytest.mark.parametrize("parse_policy", PARSE_POLICIES)
@pytest.mark.parametrize("fields,mail_from", [
    ((f"From: {ME}",), ME),
    ((f"From: <{ME}>",), ME),
    ((f'From: "Nguyễn Văn An" <{ME.upper()}>',), ME),
    ((f"From: =?utf-8?q?Nguy=E1=BB=85n_V=C4=83n_An?= <{ME}>",), ME),
    ((f'From: "Nguyễn Văn An"\r\n <{ME}>',), ME),  # folded (RFC 5322 §2.2.3)
    ((f"From: {ME} (Nguyễn Văn An)",), ME),
    ((f"From: Văn phòng <{UNIT_BOX}>", f"Sender: {UNIT_BOX}"), UNIT_BOX),
    ((f"From: {ME}", f"Sender: Nguyễn Văn An <{ME}>"), ME),
])
def test_header_from_matches_accepts(fields, mail_from, parse_policy):
    assert header_from_matches(data_ctx(*fields, parse_policy=parse_policy, mail_from=mail_from)) is None


def test_header_from_matches_needs_valid_envelope_sender():
    assert_refused(header_from_matches(data_ctx(f"From: {ME}", mail_from="")), 550, "5.7.1")


def test_header_from_matches_without_headers_refuses():
    assert_refused(header_from_matches(make_ctx("data", headers=None)), 550, "5.7.1")


# ---- no_impersonation ---------------------------------------------------------------------

@pytest.mark.parametrize("fields,kw", [
    ((f'From: "Trần Thị Bình" <{ME}>',), {}),
    ((f'From: "TRAN THI BINH" <{ME}>',), {}),
    ((f'From: "  trần   thị  bình " <{ME}>',), {}),
    ((f'From: "Trần Thị Bình." <{ME}>',), {}),
    ((f"From: =?utf-8?b?VHLhuqduIFRo4buLIELDrG5o?= <{ME}>",), {}),
    ((f'From: "Tr\u200bần Thị Bình" <{ME}>',), {}),  # zero-width space
    ((f'From: "{unicodedata.normalize("NFD", "Trần Thị Bình")}" <{ME}>',), {}),
    ((f"From: {ME} (Trần Thị Bình)",), {}),  # a comment shown as the name
    ((f'From: "Nguyễn Văn An" <{ME}>', f'Sender: "Trần Thị Bình" <{ME}>'), {}),
    ((f'From: "Nguyễn Văn An" <{ME}>', 'Reply-To: "Trần Thị Bình" <x@gmail.com>'), {}),
    ((f'From: "{BOSS}" <{ME}>',), {}),
    (('From: "giamdoc@hochiminhcity.gov.vn" <x@evil.example>',), {}),
    ((f'From: "Giám đốc <{BOSS}>" <{ME}>',), {}),
    ((f"From: =?utf-8?b?Z2lhbWRvY0Bob2NoaW1pbmhjaXR5Lmdvdi52bg==?= <{ME}>",), {}),
    ((f"From: {ME}", f"Reply-To: {BOSS}"), {}),
    ((f"From: {ME}", f"Reply-To: {BOSS.upper()}"), {}),
    ((f"From: {ME}", f"Reply-To: x@gmail.com, {BOSS}"), {}),
    ((f'From: "Nguyễn Văn An" <{ME}>',), {"sender": None}),  # unauthenticated: no names
])
def test_no_impersonation_refuses(fields, kw):
    assert_refused(no_impersonation(data_ctx(*fields, **kw)), 550, "5.7.1")


@pytest.mark.parametrize("fields,kw", [
    ((f'From: "Nguyễn Văn An" <{ME}>',), {}),  # own name, though a namesake exists
    ((f'From: "NGUYEN VAN AN" <{ME}>',), {}),
    ((f'From: "Văn phòng Sở TTTT" <{UNIT_BOX}>',), {}),  # a granted mailbox's name
    ((f'From: "{ME}" <{ME}>',), {}),
    ((f'From: "An (an.nguyen@hochiminhcity.gov.vn)" <{ME}>',), {}),
    ((f"From: {ME}", f"Reply-To: {UNIT_BOX}"), {}),
    ((f"From: {ME}", f"Reply-To: {ME}"), {}),
    ((f"From: {ME}", "Reply-To: ban.to.chuc@gmail.com"), {}),
    ((f'From: "Phòng Văn hóa" <{ME}>',), {}),
    ((f"From: {ME}",), {"directory_names": {}}),
    ((f'From: "Trần Thị Bình" <{ME}>',),  # granted: may send as the director's box
     {"sender": replace(SENDER, may_send_as=SENDER.may_send_as | {BOSS})}),
])
def test_no_impersonation_accepts(fields, kw):
    assert no_impersonation(data_ctx(*fields, **kw)) is None


def test_no_impersonation_index_follows_a_new_directory():
    fields = (f'From: "Lê Văn Cường" <{ME}>',)
    assert no_impersonation(data_ctx(*fields)) is None
    bigger = {"cuong@hochiminhcity.gov.vn": "Lê Văn Cường", **dict(make_ctx().directory_names)}
    assert_refused(no_impersonation(data_ctx(*fields, directory_names=bigger)), 550, "5.7.1")


# ---- classification ---------------------------------------------------------------------

MARKED_SUBJECTS = [
    "[MẬT] Báo cáo tình hình", "MẬT: Báo cáo", "Báo cáo MẬT", "Báo cáo (MẬT)", "MẬT",
    "TỐI MẬT - Kế hoạch", "TUYỆT MẬT", "TOI MAT ke hoach", "TUYET MAT", "[MAT] bao cao",
    "HƯỚNG DẪN ĐỔI MẬT KHẨU",  # capitals read as the stamp: refused on purpose
    "KHÔNG MẬT",
    unicodedata.normalize("NFD", "[MẬT] Báo cáo"),
    "M\u200bẬT báo cáo", "ＭẬＴ báo cáo",
    "=?utf-8?q?=5BM=E1=BA=ACT=5D_B=C3=A1o_c=C3=A1o?=",
    "=?utf-8?q?M?= =?utf-8?q?=E1=BA=ACT?= báo cáo",  # split across encoded words
    "=?x-unknown?q?M=E1=BA=ACT?=",  # unknown charset: decoded as UTF-8 anyway
    "=?windows-1258?b?W03C8lRdIELhbyBj4W8=?=",  # Vietnamese code page, combining dot below
    "Báo cáo tuần\r\n [MẬT]",  # folded
]
PLAIN_SUBJECTS = [
    "Đổi mật khẩu hộp thư", "Bí mật của thành công", "Mật", "Mật khẩu mới", "mat khau",
    "Ủy ban MẶT TRẬN Tổ quốc", "MẶT TRẬN TỔ QUỐC VIỆT NAM", "MẤT ĐIỆN", "THÔNG BÁO MÁT",
    "FORMAT", "TOMATO", "SMART CITY", "MATLAB", "Giấy mời họp", "",
    "=?utf-8?q?=C4=90=E1=BB=95i_m=E1=BA=ADt_kh=E1=BA=A9u?=",
]


@pytest.mark.parametrize("subject", MARKED_SUBJECTS)
def test_classification_refuses_marked_subject(subject):
    verdict = classification(data_ctx(f"From: {ME}", f"Subject: {subject}"))
    assert_refused(verdict, 550, "5.7.1")
    assert "nội dung mật không được gửi qua thư điện tử" in verdict.text_vi
    assert "confidential channel" in verdict.text_en


@pytest.mark.parametrize("subject", PLAIN_SUBJECTS)
def test_classification_accepts_plain_subject(subject):
    assert classification(data_ctx(f"From: {ME}", f"Subject: {subject}")) is None


@pytest.mark.parametrize("value,refused", [
    ("MẬT", True), ("Mật", True), ("mat", True), ("  TỐI MẬT  ", True), ("[Tuyệt mật]", True),
    ("=?utf-8?q?M=E1=BA=ACT?=", True), ("tuyet mat", True),
    ("Thường", False), ("Không mật", False), ("", False), ("Mật khẩu", False),
])
def test_classification_header(value, refused):
    verdict = classification(data_ctx(f"From: {ME}", f"X-Classification: {value}", "Subject: Họp"))
    if refused:
        assert_refused(verdict, 550, "5.7.1")
    else:
        assert verdict is None


def test_classification_header_name_and_markers_come_from_config():
    cfg = ClassificationConfig(header="X-Do-Mat", markers=("HẠN CHẾ",))
    settings = replace(SETTINGS, classification=cfg)
    marked_header = data_ctx(f"From: {ME}", "X-Do-Mat: hạn chế", settings=settings)
    assert_refused(classification(marked_header), 550, "5.7.1")
    marked_subject = data_ctx(f"From: {ME}", "Subject: TÀI LIỆU HẠN CHẾ", settings=settings)
    assert_refused(classification(marked_subject), 550, "5.7.1")
    # MẬT is no longer a marker, and the old header name means nothing
    other = data_ctx(f"From: {ME}", "X-Classification: MẬT", "Subject: [MẬT]", settings=settings)
    assert classification(other) is None


@pytest.mark.parametrize("subject,expected", [
    ("TỐI MẬT", True), ("TỐI MAT", True), ("TỐI-MẬT", True), ("TỐI", False), ("TỐIMẬT", False),
])
def test_multi_word_marker_alone(subject, expected):
    assert subject_has_marker(subject, ("TỐI MẬT",)) is expected
