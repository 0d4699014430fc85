"""Ed25519 signatures over a report's SHA-256, in a detached JSON file beside the workbook.

Verification needs nothing but the two files and a public key, so an auditor can do it offline
(`accessreview report verify`). Every key that ever signed is kept (``signing_keys``) and published
at ``GET /v1/signing-keys``, so reports signed before a key rotation still verify.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

SIGNATURE_FORMAT = "accessreview-signature/1"


class SigningError(Exception):
    pass


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public_key: Ed25519PublicKey) -> str:
    return public_key.public_bytes(serialization.Encoding.PEM,
                                   serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_private_key(path: Path, *, create: bool) -> Ed25519PrivateKey:
    """The signing key from a PEM file; in development, one is made on first start."""
    if not path.exists():
        if not create:
            raise SigningError(f"no signing key at {path}")
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        path.chmod(0o600)
        return key
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningError(f"{path} is not an Ed25519 private key")
    return key


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _signed_bytes(claims: dict[str, Any]) -> bytes:
    return json.dumps(claims, sort_keys=True, separators=(",", ":")).encode()


def sign(private_key: Ed25519PrivateKey, workbook: Path, *, report: str, campaign: int | None,
         signed_at: datetime, kind: str) -> dict[str, Any]:
    """The detached signature document for ``workbook``."""
    public_key = private_key.public_key()
    claims = {"format": SIGNATURE_FORMAT, "algorithm": "Ed25519", "file": report, "kind": kind,
              "sha256": sha256_of(workbook), "campaign": campaign, "signed_at": signed_at.isoformat(),
              "key_id": key_id(public_key)}
    signature = base64.b64encode(private_key.sign(_signed_bytes(claims))).decode()
    return {**claims, "signature": signature, "public_key": public_pem(public_key)}


@dataclass(frozen=True)
class Verification:
    valid: bool
    reason: str
    claims: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"valid": self.valid, "reason": self.reason, "campaign": self.claims.get("campaign"),
                "signed_at": self.claims.get("signed_at"), "key_id": self.claims.get("key_id"),
                "sha256": self.claims.get("sha256"), "file": self.claims.get("file")}


def verify(workbook_bytes: bytes, signature_document: bytes | str,
           public_keys: dict[str, str] | None = None) -> Verification:
    """Check the workbook against its signature. ``public_keys`` (key id → PEM) pins the keys to trust;
    without it, the key inside the signature file is used (integrity only, not who signed)."""
    try:
        document = json.loads(signature_document)
        claims = {k: document[k] for k in ("format", "algorithm", "file", "kind", "sha256", "campaign",
                                           "signed_at", "key_id")}
        signature = base64.b64decode(document["signature"], validate=True)
    except (ValueError, KeyError, TypeError) as exc:
        return Verification(False, f"the signature file is not one this service writes ({exc})", {})
    if claims["format"] != SIGNATURE_FORMAT or claims["algorithm"] != "Ed25519":
        return Verification(False, f"unsupported signature format {claims['format']!r}", claims)
    actual = hashlib.sha256(workbook_bytes).hexdigest()
    if actual != claims["sha256"]:
        return Verification(False, f"the workbook's SHA-256 is {actual}, the signature names {claims['sha256']}: "
                                   "the file was changed", claims)
    if public_keys is not None:
        pem = public_keys.get(claims["key_id"])
        if pem is None:
            return Verification(False, f"key {claims['key_id']} is not one of the trusted keys", claims)
    else:
        pem = document.get("public_key", "")
    try:
        public_key = serialization.load_pem_public_key(pem.encode())
        if not isinstance(public_key, Ed25519PublicKey) or key_id(public_key) != claims["key_id"]:
            return Verification(False, "the public key does not match the signature's key id", claims)
        public_key.verify(signature, _signed_bytes(claims))
    except (ValueError, InvalidSignature):
        return Verification(False, "the signature does not match (the signature file was changed, or another "
                                   "key signed it)", claims)
    pinned = "with a trusted key" if public_keys is not None else "with the key in the signature file"
    return Verification(True, f"signature valid, {pinned} ({claims['key_id']})", claims)
