"""Signatures of webhook deliveries (header CloudConvert-Signature).

CloudConvert and the engine sign the raw request body with HMAC-SHA256 and send it as lowercase
hex. The receiver must verify the exact bytes it received (re-serialising parsed JSON changes
them) and compare in constant time, so that a forger learns nothing from response timings.
"""

import hashlib
import hmac

SIGNATURE_HEADER = "CloudConvert-Signature"


def sign(secret: str, body: bytes) -> str:
    """The signature CloudConvert sends for `body`: lowercase hex HMAC-SHA256 keyed by `secret`."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(*, secret: str, body: bytes, signature: str | None) -> bool:
    """True only if `signature` is exactly sign(secret, body); an empty secret verifies nothing."""
    if not secret or not signature:
        return False
    expected = sign(secret, body)
    if len(signature) != len(expected):
        return False
    # Bytes, because compare_digest refuses non-ASCII str and a header may carry anything.
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "surrogateescape"))
