"""The names a refused attempt is recorded under in the usage ledger (``usage_event.policy``),
with what each means for an administrator, in Vietnamese and English.

The rules are those of :mod:`policies.registry` (``docs/policies.md``); the front end adds a
few fixed checks of its own (:mod:`mailhub.submission`), and the runner names a check that
timed out or could not run (:mod:`policies.runner`).
"""
from __future__ import annotations

from policies.registry import POLICIES

POLICY_LABELS: dict[str, tuple[str, str]] = {
    # MAIL FROM
    "sender_domain_official": ("Địa chỉ gửi không thuộc tên miền chính thức của thành phố",
                               "Sender address outside the city's official domains"),
    "sender_owned": ("Gửi bằng địa chỉ không phải của mình, hoặc chưa đăng nhập",
                     "Sending as an address not one's own, or not signed in"),
    "rate_limit": ("Vượt giới hạn số thư mỗi giờ hoặc mỗi ngày", "Hourly or daily message limit reached"),
    "declared_size": ("Kích thước khai báo vượt mức cho phép", "Declared size over the limit"),
    # RCPT TO
    "recipient_syntax": ("Địa chỉ người nhận không hợp lệ", "Invalid recipient address"),
    "recipient_count": ("Quá nhiều người nhận trong một thư", "Too many recipients in one message"),
    "external_recipients": ("Hạn chế gửi ra ngoài hệ thống công vụ", "External recipients restricted"),
    # end of DATA
    "message_size": ("Thư vượt kích thước cho phép", "Message over the size limit"),
    "header_from_matches": ("Địa chỉ “From” trong thư không khớp người gửi",
                            "The From header does not match the sender"),
    "no_impersonation": ("Mạo danh cán bộ khác", "Impersonating another official"),
    "classification": ("Văn bản có nội dung mật", "Document marked secret"),
    "signed_documents": ("Văn bản thiếu chữ ký số hợp lệ", "Document without a valid digital signature"),
    # the front end's own checks, and the runner
    "bare_newline": ("Thư có ký tự xuống dòng không hợp lệ", "Bare line feed in the message"),
    "no_headers": ("Thư không có phần tiêu đề", "Message without a header"),
    "timeout": ("Kiểm tra quá thời gian (từ chối tạm thời)", "A check timed out (temporary refusal)"),
    "runner": ("Không chạy được các bước kiểm tra (từ chối tạm thời)", "The checks could not run (temporary refusal)"),
    "unknown": ("Không rõ quy tắc", "Unknown rule"),
}



def registered() -> set[str]:
    """The rules of the registry (each should have a label; tests/test_web_refusals.py checks)."""
    return {name for stage in POLICIES.values() for name in stage}


def policy_label(name: str | None) -> tuple[str, str]:
    """The label of a ledger policy name; an unlisted name stands for itself."""
    return POLICY_LABELS.get(name or "unknown", (name or "", name or ""))
