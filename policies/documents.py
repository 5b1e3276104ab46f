"""The ``signed_documents`` rule: where ``[[documents.rules]]`` says ``require``, a
submission needs a valid digital signature (S/MIME or a signed PDF)."""
from __future__ import annotations

from policies.context import PolicyContext
from policies.verdict import Verdict, reject


def signed_documents(ctx: PolicyContext) -> Verdict | None:
    """Refuse (550 5.7.1) a submission in ``require`` mode whose signatures checked
    (``ctx.documents``) give no valid one, saying what is missing: a signature at
    all, or what is wrong with the one found."""
    if ctx.documents_mode != "require" or ctx.documents is None:
        return None
    check = ctx.documents
    if any(s.valid for s in check.signatures):
        return None
    if not check.signatures:
        return reject(550, "5.7.1",
                      "Văn bản gửi tới địa chỉ này phải có chữ ký số: hãy ký số văn bản (tệp PDF có chữ ký số "
                      "hoặc thư ký S/MIME) rồi gửi lại",
                      "Documents sent to this address must be digitally signed: sign the document (a signed "
                      "PDF or an S/MIME signed message) and send it again")
    first = check.signatures[0]
    return reject(550, "5.7.1",
                  f"Chữ ký số không hợp lệ ({_VI.get(first.problem, first.problem)}): hãy ký lại văn bản bằng "
                  "chứng thư số còn hiệu lực do tổ chức được công nhận cấp rồi gửi lại",
                  f"The digital signature is not valid ({first.problem}): sign the document again with a "
                  "valid certificate from a recognised authority and send it again")


_VI = {  # every problem text of mailhub.signatures, in Vietnamese (tests check none is missing)
    "the document was changed after signing": "văn bản đã bị sửa sau khi ký",
    "the message was changed after signing": "thư đã bị sửa sau khi ký",
    "the signature cannot be read": "không đọc được chữ ký",
    "the signature part is missing": "thiếu phần chữ ký",
    "the signature does not verify": "chữ ký không khớp với nội dung",
    "the signer's certificate is not issued by a trusted authority":
        "chứng thư số không do tổ chức được công nhận cấp",
    "the signer's certificate is not meant for signing": "chứng thư số không dùng để ký",
    "the signature uses an algorithm that is no longer safe": "chữ ký dùng thuật toán không còn an toàn",
    "the signer's certificate was revoked": "chứng thư số đã bị thu hồi",
    "the signature claims a signing time in the future": "thời điểm ký ở tương lai",
    "the signer's certificate had expired when it signed": "chứng thư số đã hết hạn khi ký",
    "the signer's certificate was not yet valid when it signed": "chứng thư số chưa có hiệu lực khi ký",
    "a certificate of the signer's authority was not valid when it signed":
        "chứng thư của tổ chức cấp không còn hiệu lực khi ký",
}
