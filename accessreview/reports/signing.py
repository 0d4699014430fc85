"""Ed25519 signatures of a report, made when it is stored: a detached JSON file of signed claims
(file, kind, campaign, stage, SHA-256, time, key) beside the workbook, and a raw signature over the
workbook's own bytes that stock tools check (``openssl pkeyutl -verify -rawin``).

Verifying lives in ``verify_report`` (the standard library and ``cryptography`` only, so that it runs
outside the project). Every key that ever signed is kept (``signing_keys``) and published at
``GET /v1/signing-keys`` with its fingerprint, so reports signed before a key rotation still verify.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .verify_report import SIGNATURE_FORMAT, key_id, signed_bytes


class SigningError(Exception):
    pass


def public_pem(public_key) -> str:
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


def sign(private_key: Ed25519PrivateKey, workbook: bytes, *, report: str, campaign: int | None,
         signed_at: datetime, kind: str, stage: str) -> tuple[dict[str, Any], bytes]:
    """The detached signature document for the workbook's bytes, and the raw signature over them."""
    public_key = private_key.public_key()
    claims = {"format": SIGNATURE_FORMAT, "algorithm": "Ed25519", "file": report, "kind": kind,
              "sha256": hashlib.sha256(workbook).hexdigest(), "campaign": campaign, "stage": stage,
              "signed_at": signed_at.isoformat(), "key_id": key_id(public_key)}
    signature = base64.b64encode(private_key.sign(signed_bytes(claims))).decode()
    document = {**claims, "signature": signature, "public_key": public_pem(public_key)}
    return document, private_key.sign(workbook)
