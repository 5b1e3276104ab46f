"""Digitally signed documents in submitted mail: S/MIME signatures and signed PDF
attachments, verified against the city's trust roots (issue 5).

- :mod:`.outcome` — what a check finds (the records every other module shares);
- :mod:`.trust` — the configured folder of CA certificates;
- :mod:`.smime` — ``multipart/signed`` (``application/pkcs7-signature``) messages;
- :mod:`.pdf` — signed PDF attachments (pyHanko);
- :mod:`.examine` — one message in, one :class:`~.outcome.DocumentCheck` out.
"""
