"""Verify a signed accessreview report: the standard library and ``cryptography``, nothing else.

This file also works on its own, copied out of the project, so that an auditor needs neither the
service nor its dependencies::

    pip install cryptography
    python verify_report.py report.xlsx --fingerprint HEX       # or --public-key key.pem

It reads ``report.xlsx.sig.json`` (the signed claims) and, when present, ``report.xlsx.sig`` (the raw
Ed25519 signature over the workbook's own bytes, which ``openssl pkeyutl -verify -rawin`` checks
as well). A report is valid only against a key the auditor chose to trust: a public key they hold,
or the SHA-256 fingerprint of the raw 32-byte public key that the operator published out of band.
Without either, a signature that is consistent with the key inside the signature file is reported as
untrusted, never as valid: anyone can re-sign an edited workbook with a fresh key.

Exit status: 0 valid, 1 not valid, 2 usage, 3 consistent but the key is untrusted.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

SIGNATURE_FORMAT = "accessreview-signature/1"
CLAIMS = ("format", "algorithm", "file", "kind", "sha256", "campaign", "signed_at", "key_id")
# Signed when present: files signed before the claim existed still verify, and one that has it cannot
# lose it (or change it) without breaking the signature.
OPTIONAL_CLAIMS = ("stage",)
STAGES = {"sign_off": "at sign-off, before remediation", "remediation": "after remediation",
          "follow_up": "at the follow-up check", "ad_hoc": "ad hoc, outside any campaign"}
RAW_SIGNATURE_SIZE = 64

VALID, INVALID, UNTRUSTED = "valid", "invalid", "untrusted"
EXIT_CODES = {VALID: 0, INVALID: 1, UNTRUSTED: 3}
_NOT_HEX = re.compile(r"[\s:]")


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw 32-byte public key, as 64 lowercase hex digits."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def key_id(public_key: Ed25519PublicKey) -> str:
    """The short name a signature gives its key: the fingerprint's first 16 hex digits."""
    return fingerprint(public_key)[:16]


def normalize_fingerprint(text: str) -> str:
    """A fingerprint as typed (any case, with colons or spaces) as 64 lowercase hex digits."""
    value = _NOT_HEX.sub("", text).lower()
    if len(value) != 64 or not all(c in "0123456789abcdef" for c in value):
        raise ValueError(f"{text!r} is not a SHA-256 fingerprint (64 hex digits)")
    return value


def load_public_key(pem: bytes | str) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"not a PEM public key ({exc})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def signed_bytes(claims: dict[str, Any]) -> bytes:
    """The exact bytes the JSON signature covers: the claims as compact JSON with sorted keys."""
    return json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()


def describe(claims: dict[str, Any]) -> str:
    """What the report is, in words: a campaign's workbook at a stage, or ad-hoc evidence."""
    kind, stage = claims.get("kind"), claims.get("stage")
    if claims.get("campaign") is not None:
        return f"campaign {claims['campaign']} report" + (f" ({STAGES.get(stage, stage)})" if stage else "")
    return {"access": "ad-hoc report of current access", "decisions": "ad-hoc report of the decision log"}.get(
        kind, f"ad-hoc {kind} report" if kind else "report")


@dataclass(frozen=True)
class Verification:
    status: str  # valid | invalid | untrusted
    reason: str
    claims: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None
    raw_signature: bool = False  # the raw signature over the workbook's bytes was checked too

    @property
    def valid(self) -> bool:
        return self.status == VALID

    @property
    def subject(self) -> str:
        return describe(self.claims)

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "status": self.status, "reason": self.reason,
                "campaign": self.claims.get("campaign"), "kind": self.claims.get("kind"),
                "stage": self.claims.get("stage"),
                "signed_at": self.claims.get("signed_at"), "key_id": self.claims.get("key_id"),
                "fingerprint": self.fingerprint, "sha256": self.claims.get("sha256"),
                "file": self.claims.get("file"), "raw_signature": self.raw_signature}


def verify(workbook: bytes, document: bytes | str | None, *, public_keys: Iterable[Ed25519PublicKey] = (),
           fingerprints: Iterable[str] = (), raw_signature: bytes | None = None) -> Verification:
    """Check a workbook against its signature document and/or raw signature.

    The key is trusted when it is one of ``public_keys`` or its fingerprint is one of ``fingerprints``.
    With neither given, a signature consistent with the key in the document is ``untrusted``; with
    either given, a signature by any other key is ``invalid``.
    """
    keys = {key_id(k): k for k in public_keys}
    pinned = {normalize_fingerprint(f) for f in fingerprints}
    anchored = bool(keys or pinned)
    claims: dict[str, Any] = {}
    key: Ed25519PublicKey | None = None
    if document is not None:
        try:
            claims, signature, embedded = parse_document(document)
        except ValueError as exc:
            return Verification(INVALID, f"the signature file is not one this service writes ({exc})")
        actual = hashlib.sha256(workbook).hexdigest()
        if actual != claims["sha256"]:
            return Verification(INVALID, f"the workbook's SHA-256 is {actual}, the signature names "
                                         f"{claims['sha256']}: the file was changed", claims)
        key = keys.get(claims["key_id"]) or embedded
        if key is None:
            return Verification(INVALID, f"signed by key {claims['key_id']}, which is not a trusted key, and the "
                                         "signature file carries no public key", claims)
        if key_id(key) != claims["key_id"]:
            return Verification(INVALID, f"the key in the signature file does not match its key id "
                                         f"{claims['key_id']}", claims)
        try:
            key.verify(signature, signed_bytes(claims))
        except InvalidSignature:
            return Verification(INVALID, "the signature does not match its claims (the signature file was "
                                         "changed, or another key signed it)", claims)
    elif raw_signature is None:
        return Verification(INVALID, "no signature to check: give the signature file or the raw signature")
    elif len(keys) != 1:
        return Verification(INVALID, "a raw signature alone names no key: give the one public key to check it with")
    else:
        key = next(iter(keys.values()))
    if raw_signature is not None:
        if len(raw_signature) != RAW_SIGNATURE_SIZE:
            return Verification(INVALID, f"the raw signature is {len(raw_signature)} bytes, not "
                                         f"{RAW_SIGNATURE_SIZE}", claims)
        try:
            key.verify(raw_signature, workbook)
        except InvalidSignature:
            return Verification(INVALID, "the raw signature does not match the workbook's bytes with this key",
                                claims)
    return _trust(key, keys, pinned, anchored, claims, raw_signature is not None)


def _trust(key: Ed25519PublicKey, keys: dict[str, Ed25519PublicKey], pinned: set[str], anchored: bool,
           claims: dict[str, Any], raw: bool) -> Verification:
    print_ = fingerprint(key)
    what = "the signature and the raw signature are" if raw else "the signature is"
    if not anchored:
        return Verification(UNTRUSTED, f"{what} consistent, but key {print_[:16]} (fingerprint {print_}) is "
                                       "untrusted: it is only the key inside the signature file, and anyone can "
                                       "re-sign an edited workbook with a key of their own. Verify with "
                                       "--fingerprint or --public-key, from the operator's published fingerprint",
                            claims, print_, raw)
    known = keys.get(print_[:16])
    if not (known is not None and fingerprint(known) == print_) and print_ not in pinned:
        return Verification(INVALID, f"signed by key {print_[:16]} (fingerprint {print_}), which is not a "
                                     "trusted key: the report was not signed by the service", claims, print_, raw)
    return Verification(VALID, f"{what} valid, by trusted key {print_[:16]} (fingerprint {print_})",
                        claims, print_, raw)


def parse_document(document: bytes | str) -> tuple[dict[str, Any], bytes, Ed25519PublicKey | None]:
    """The signed claims, the signature over them, and the public key the file carries (None if absent or
    unreadable); ``ValueError`` when it is not a signature file this service writes."""
    try:
        data = json.loads(document)
        claims = {name: data[name] for name in CLAIMS}
        claims.update({name: data[name] for name in OPTIONAL_CLAIMS if name in data})
        signature = base64.b64decode(data["signature"], validate=True)
    except (KeyError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"{type(exc).__name__}: {exc}") from None
    if claims["format"] != SIGNATURE_FORMAT or claims["algorithm"] != "Ed25519":
        raise ValueError(f"unsupported format {claims['format']!r} / {claims['algorithm']!r}")
    if not isinstance(claims["sha256"], str) or not isinstance(claims["key_id"], str):
        raise ValueError("sha256 and key_id must be text")
    embedded = None
    if data.get("public_key"):
        try:
            embedded = load_public_key(str(data["public_key"]))
        except ValueError:
            embedded = None
    return claims, signature, embedded


# -- the command ------------------------------------------------------------------------------------

def run(workbook: Path, *, signature: Path | None = None, raw_signature: Path | None = None,
        public_key: Path | None = None, fingerprint_hex: str | None = None) -> tuple[Verification, str]:
    """Verify files on disk; returns the verdict and the line to print. ``ValueError`` for bad input."""
    document_path = signature or workbook.with_name(workbook.name + ".sig.json")
    raw_path = raw_signature or workbook.with_name(workbook.name + ".sig")
    if signature is not None and not signature.exists():
        raise ValueError(f"no signature file {signature}")
    if raw_signature is not None and not raw_signature.exists():
        raise ValueError(f"no raw signature file {raw_signature}")
    document = document_path.read_bytes() if document_path.exists() else None
    raw = raw_path.read_bytes() if raw_path.exists() else None
    if document is None and raw is None:
        raise ValueError(f"no signature beside the workbook ({document_path.name} or {raw_path.name}); "
                         "pass --signature or --raw-signature")
    keys = []
    if public_key is not None:
        keys.append(load_public_key(public_key.read_bytes()))
        if fingerprint_hex is not None and fingerprint(keys[0]) != normalize_fingerprint(fingerprint_hex):
            raise ValueError(f"the public key's fingerprint is {fingerprint(keys[0])}, not the one given")
    fingerprints = [fingerprint_hex] if fingerprint_hex is not None else []
    result = verify(workbook.read_bytes(), document, public_keys=keys, fingerprints=fingerprints, raw_signature=raw)
    return result, _line(result)


def _line(result: Verification) -> str:
    claims = result.claims
    facts = (f"; {describe(claims)} {claims.get('file')}, signed at {claims.get('signed_at')}, "
             f"SHA-256 {claims.get('sha256')}" if claims else "")
    label = {VALID: "valid", INVALID: "NOT VALID", UNTRUSTED: "UNTRUSTED"}[result.status]
    return f"{label}: {result.reason}{facts}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="verify_report.py", description="Verify a signed accessreview report against a key you trust.",
        epilog="Exit status: 0 valid, 1 not valid, 2 usage, 3 consistent but the key is untrusted.")
    parser.add_argument("workbook", type=Path)
    parser.add_argument("--signature", type=Path, help="the signature file (default: WORKBOOK.sig.json)")
    parser.add_argument("--raw-signature", type=Path, help="the raw 64-byte signature (default: WORKBOOK.sig)")
    parser.add_argument("--public-key", type=Path, help="trust this Ed25519 public key (PEM)")
    parser.add_argument("--fingerprint", help="trust the key whose SHA-256 fingerprint is this (64 hex digits)")
    args = parser.parse_args(argv)
    try:
        result, line = run(args.workbook, signature=args.signature, raw_signature=args.raw_signature,
                           public_key=args.public_key, fingerprint_hex=args.fingerprint)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(line, file=sys.stdout if result.valid else sys.stderr)
    return EXIT_CODES[result.status]


if __name__ == "__main__":
    sys.exit(main())
