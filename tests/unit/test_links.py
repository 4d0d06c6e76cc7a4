"""Signed unsubscribe links: one valid token per (customer, recipient); anything else is None, never an error."""

from __future__ import annotations

import base64

import pytest

from domain.ids import contact_key
from domain.links import unsubscribe_token, verify_unsubscribe

KEY = b"test-secret"
RECIPIENT = contact_key("ops@example.jp")
STANDARD = str.maketrans("-_", "+/")


def token_for(customer_id: str = "c-42") -> str:
    return unsubscribe_token(KEY, customer_id, RECIPIENT)


@pytest.mark.parametrize("customer_id", ["c-42", "c", "cu", "cus", "顧客-1", "x" * 256])
def test_a_token_verifies_to_what_it_signed(customer_id):
    assert verify_unsubscribe(KEY, token_for(customer_id)) == (customer_id, RECIPIENT)


def test_tokens_issued_before_the_strict_check_still_verify():
    # the format of the links already sent: unpadded URL-safe base64 of the id, the contact key,
    # 16 signature bytes as 22 characters
    cid, recipient, signature = token_for("c-42").split(".")
    assert cid == base64.urlsafe_b64encode(b"c-42").decode().rstrip("=")
    assert recipient == RECIPIENT and len(signature) == 22 and "=" not in signature


def test_another_key_or_an_altered_field_does_not_verify():
    token = token_for()
    cid, recipient, signature = token.split(".")
    assert verify_unsubscribe(b"other-key", token) is None
    assert verify_unsubscribe(KEY, token[:-2] + ("xx" if token[-2:] != "xx" else "yy")) is None
    other = base64.urlsafe_b64encode(b"c-43").decode().rstrip("=")
    assert verify_unsubscribe(KEY, f"{other}.{recipient}.{signature}") is None
    assert verify_unsubscribe(KEY, f"{cid}.{contact_key('dev@example.jp')}.{signature}") is None


@pytest.mark.parametrize("alter", [
    lambda c, r, s: f"{c}=.{r}.{s}",              # padding added to the customer field
    lambda c, r, s: f"{c}==.{r}.{s}",
    lambda c, r, s: f"{c}.{r}.{s}==",             # padding added to the signature
    lambda c, r, s: f"{c}.{r}.{s}=",
    lambda c, r, s: f"{c[:2]}={c[2:]}.{r}.{s}",   # padding inside a field
    lambda c, r, s: f"{c}!.{r}.{s}",              # a character the decoder would skip
    lambda c, r, s: f"{c}.{r}.{s[:10]} {s[10:]}",
    lambda c, r, s: f"{c}\n.{r}.{s}",
    lambda c, r, s: f"{c.translate(STANDARD)}.{r}.{s.translate(STANDARD)}",  # the standard alphabet
], ids=["cid=", "cid==", "sig==", "sig=", "inner=", "junk", "space", "newline", "std-alphabet"])
def test_altered_base64_does_not_verify(alter):
    # "c-???" encodes to "Yy0_Pz8": its '_' differs in the standard alphabet
    c, r, s = unsubscribe_token(KEY, "c-???", RECIPIENT).split(".")
    assert c == "Yy0_Pz8"
    assert verify_unsubscribe(KEY, f"{c}.{r}.{s}") == ("c-???", RECIPIENT)
    altered = alter(c, r, s)
    assert altered != f"{c}.{r}.{s}"
    assert verify_unsubscribe(KEY, altered) is None


def test_a_non_canonical_encoding_of_the_same_bytes_does_not_verify():
    # "c-42" is 4 bytes: 6 characters whose last one carries 4 unused bits; a lenient decoder
    # reads "Yy00Mh" and "Yy00Mi" (unused bits set) as the same bytes
    cid, recipient, signature = token_for("c-42").split(".")
    assert cid == "Yy00Mg"
    for last in "hijklmnop":
        assert base64.urlsafe_b64decode(cid[:-1] + last + "==") == b"c-42"
        assert verify_unsubscribe(KEY, f"{cid[:-1]}{last}.{recipient}.{signature}") is None
    assert verify_unsubscribe(KEY, f"{cid}.{recipient}.{signature[:-1]}{chr(ord(signature[-1]) ^ 1)}") is None


@pytest.mark.parametrize("token", [
    "", ".", "..", "...", "a.b", "a.b.c.d", "é.é.é", "YY00Mg.é.AAAAAAAAAAAAAAAAAAAAAA",
    "YW.3f9a1c2b04de.ÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄÄ", "\udcff.\udcfe.\udcfd", "\x00.\x00.\x00",
    "A" * 100_000, "YW.3f9a1c2b04de." + "A" * 5000,
    "YW.3f9a1c2b04de.AAAA",           # a signature of the wrong length
    "_w.3f9a1c2b04de." + "A" * 22,    # a customer id that is not UTF-8 (0xff)
])
def test_garbage_is_refused_without_an_error(token):
    assert verify_unsubscribe(KEY, token) is None


def test_non_ascii_in_each_field_is_refused():
    cid, recipient, signature = token_for().split(".")
    for altered in (f"{cid}é.{recipient}.{signature}", f"{cid}.{recipient}é.{signature}",
                    f"{cid}.{recipient}.{signature[:-1]}é", f"{cid}.{recipient}.{signature}\u200b"):
        assert verify_unsubscribe(KEY, altered) is None
