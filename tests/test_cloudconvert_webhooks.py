"""Webhook signatures, checked against the vectors every official CloudConvert SDK agrees on."""

from pathlib import Path

import pytest

from conversions.cloudconvert.webhooks import sign, verify_signature

FIXTURES = Path(__file__).parent / "fixtures"
# The recorded job.finished delivery of the official SDKs' tests (cloudconvert-php, -node, -ruby).
PAYLOAD = (FIXTURES / "webhook_job_finished_payload.json").read_bytes()
PAYLOAD_SIGNATURE = "576b653f726c85265a389532988f483b5c7d7d5f40cede5f5ddf9c3f02934f35"
SHORT_SIGNATURE = "5c4c0691bce8a1a2af738b7073fe0627e792734813358c5f88a658819dd0a6d2"


def test_it_signs_the_short_vector():
    assert sign("90sffs0d8fs0f9sf0", b"cloudconvert") == SHORT_SIGNATURE


def test_it_signs_the_recorded_job_finished_payload():
    assert len(PAYLOAD) == 3602
    assert sign("secret", PAYLOAD) == PAYLOAD_SIGNATURE


def test_it_verifies_both_vectors():
    assert verify_signature(secret="90sffs0d8fs0f9sf0", body=b"cloudconvert", signature=SHORT_SIGNATURE)
    assert verify_signature(secret="secret", body=PAYLOAD, signature=PAYLOAD_SIGNATURE)


def test_it_rejects_a_signature_made_with_another_secret():
    assert not verify_signature(secret="another", body=PAYLOAD, signature=PAYLOAD_SIGNATURE)


@pytest.mark.parametrize("signature", [None, ""])
def test_it_rejects_a_missing_signature(signature):
    assert not verify_signature(secret="secret", body=PAYLOAD, signature=signature)


def test_it_rejects_an_uppercase_signature():
    assert not verify_signature(secret="secret", body=PAYLOAD, signature=PAYLOAD_SIGNATURE.upper())


@pytest.mark.parametrize("signature", [PAYLOAD_SIGNATURE[:-1], PAYLOAD_SIGNATURE[:32], PAYLOAD_SIGNATURE + "0"])
def test_it_rejects_a_truncated_or_padded_signature(signature):
    assert not verify_signature(secret="secret", body=PAYLOAD, signature=signature)


def test_it_rejects_a_body_changed_by_one_byte():
    changed = PAYLOAD.replace(b'"status": "finished"', b'"status": "finishes"', 1)
    assert len(changed) == len(PAYLOAD) and changed != PAYLOAD
    assert not verify_signature(secret="secret", body=changed, signature=PAYLOAD_SIGNATURE)


def test_it_rejects_the_same_json_without_its_trailing_newline():
    """The raw bytes are signed, not the JSON they parse to."""
    assert not verify_signature(secret="secret", body=PAYLOAD.rstrip(b"\n"), signature=PAYLOAD_SIGNATURE)


def test_it_rejects_a_non_ascii_signature_without_crashing():
    assert not verify_signature(secret="secret", body=PAYLOAD, signature="é" * 64)


def test_it_verifies_nothing_without_a_secret():
    assert not verify_signature(secret="", body=b"cloudconvert", signature=sign("", b"cloudconvert"))
