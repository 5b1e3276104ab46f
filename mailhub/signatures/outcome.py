"""What checking a submission's document signatures finds. Plain frozen records:
the relay's policy, the ledger and the CLI read these and nothing else."""
from __future__ import annotations

import enum
from dataclasses import dataclass


class SignatureOutcome(str, enum.Enum):
    """The outcome of one submission, as the ledger stores it."""

    VALID = "signed-valid"      # at least one signature: intact, chains to a trust root, valid when signed
    INVALID = "signed-invalid"  # signed, but no signature passes every check (tampered, untrusted, expired…)
    UNSIGNED = "unsigned"       # neither an S/MIME signature nor a signed PDF


@dataclass(frozen=True)
class Signature:
    """One signature found: the message's S/MIME signature or one PDF's."""

    kind: str               # "smime" or "pdf"
    where: str              # "message" for S/MIME, the attachment's file name for a PDF
    intact: bool            # the signed bytes are unchanged (digest and signature verify)
    trusted: bool           # the signer's certificate chains to a configured trust root
    valid_at_signing: bool  # the certificate (and its chain) was within its validity at signing time
    signer: str             # the signer certificate's subject (RFC 4514), "" when unreadable
    signed_at: str          # ISO 8601 UTC signing time the signature claims, "" when none
    problem: str            # "" when valid; otherwise short English, e.g. "the document was changed after signing"

    @property
    def valid(self) -> bool:
        return self.intact and self.trusted and self.valid_at_signing


@dataclass(frozen=True)
class DocumentCheck:
    """Every signature found in one message, and the outcome they make."""

    signatures: tuple[Signature, ...] = ()

    @property
    def outcome(self) -> SignatureOutcome:
        if not self.signatures:
            return SignatureOutcome.UNSIGNED
        return SignatureOutcome.VALID if any(s.valid for s in self.signatures) else SignatureOutcome.INVALID

    @property
    def signer(self) -> str:
        """The subject of the first valid signature, else of the first one, else ""."""
        for s in self.signatures:
            if s.valid:
                return s.signer
        return self.signatures[0].signer if self.signatures else ""
