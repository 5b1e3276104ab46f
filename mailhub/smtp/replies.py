"""Every SMTP reply the front end writes itself, in one place.

Replies are ASCII on the wire (RFC 5321 §4.2): Vietnamese without diacritics
first, then English. Policy refusals are built by :meth:`Verdict.smtp_reply`.
"""

AUTH_OK = "235 2.7.0 Xac thuc thanh cong / Authentication successful"
AUTH_INVALID = "535 5.7.8 Sai ten dang nhap hoac mat khau / Authentication credentials invalid"
AUTH_LOCKED = ("454 4.7.0 Tai khoan hoac may tram tam bi khoa do dang nhap sai nhieu lan, "
               "thu lai sau / Too many failed logins, temporarily locked, try later")
AUTH_TOO_MANY = ("421 4.7.0 Dang nhap sai qua nhieu lan, ngat ket noi "
                 "/ Too many failed logins, closing connection")
AUTH_SYNTAX = "501 5.5.2 Du lieu xac thuc khong hop le / Malformed authentication data"
AUTH_UNAVAILABLE = ("454 4.7.0 Tam thoi khong xac thuc duoc, thu lai sau "
                    "/ Temporary authentication failure")

CONTROL_CHARS = ("501 5.5.2 Lenh chua ky tu dieu khien khong hop le "
                 "/ Control characters are not allowed in commands")
SOURCE_ROUTE = ("553 5.1.3 Khong chap nhan dia chi co dinh tuyen nguon "
                "/ Source routes are not accepted")
PREGREET = "554 5.5.0 May khach gui lenh truoc loi chao / Client spoke before the greeting"
BARE_NEWLINE = ("550 5.5.2 Thu chua ky tu CR hoac LF don le (khong phai CRLF); "
                "hay dung trinh gui thu chuan / Message contains bare CR or LF line endings")
NO_HEADERS = ("550 5.6.0 Thu khong co phan tieu de hop le "
              "/ Message has no valid header section")

DOCUMENTS_UNCHECKED = ("451 4.7.0 Chua kiem tra duoc chu ky so cua van ban, vui long gui lai sau "
                       "/ The document's digital signature could not be checked, please try again later")
QUEUED = "250 2.0.0 Da nhan, ma hang doi {queue_id} / Ok: queued as {queue_id}"
STORE_FAILED = ("451 4.3.0 Loi tam thoi khi luu thu, vui long gui lai (ma {error_id}) "
                "/ Temporary failure storing the message, try again (ref {error_id})")
INTERNAL_ERROR = ("451 4.3.0 Loi tam thoi cua may chu, vui long thu lai (ma {error_id}) "
                  "/ Temporary server error, try again (ref {error_id})")
