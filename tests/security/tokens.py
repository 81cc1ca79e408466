"""Hostile tokens: every way a bearer token can be wrong, built from scratch."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from tests.conftest import SECRET

ISSUER = "https://auth.octavia.test"
AUDIENCE = "octavia-dubbing"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def segment(value: object) -> str:
    return b64(json.dumps(value, separators=(",", ":")).encode())


def claims(**overrides: object) -> dict[str, object]:
    """Valid claims for 'alice'; an override of None drops the claim."""
    now = int(time.time())
    values: dict[str, object] = {"sub": "alice", "iat": now, "exp": now + 300,
                                 "iss": ISSUER, "aud": AUDIENCE}
    values.update(overrides)
    return {key: value for key, value in values.items() if value is not None}


def hs(key: str | bytes = SECRET, algorithm: str = "HS256", **overrides: object) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=algorithm)


def hmac_signed(header: dict[str, object], payload: dict[str, object], key: bytes) -> str:
    """An HS256 token signed by hand: PyJWT refuses to use a PEM key as an HMAC secret,
    which is exactly what the key-confusion attack does."""
    signing_input = f"{segment(header)}.{segment(payload)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def unsigned(alg: str = "none", **overrides: object) -> str:
    return f"{segment({'alg': alg, 'typ': 'JWT'})}.{segment(claims(**overrides))}."


def tampered(token: str, **overrides: object) -> str:
    """`token` with its payload changed and its signature kept."""
    header, payload, signature = token.split(".")
    values = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    values.update(overrides)
    return f"{header}.{segment(values)}.{signature}"


def swapped_header(token: str, **header: object) -> str:
    """`token` with its header changed and its signature kept."""
    _, payload, signature = token.split(".")
    return f"{segment({'typ': 'JWT', **header})}.{payload}.{signature}"


def rsa_private_pem() -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ec_private_pem() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def public_pem(private_pem: bytes) -> bytes:
    key = serialization.load_pem_private_key(private_pem, password=None)
    return key.public_key().public_bytes(serialization.Encoding.PEM,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


def write_keypair(folder: Path, private_pem: bytes) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    private, public = folder / "jwt.key", folder / "jwt.pub"
    private.write_bytes(private_pem)
    public.write_bytes(public_pem(private_pem))
    return private, public


_OTHER_RSA = rsa_private_pem()
_OTHER_EC = ec_private_pem()

# name -> the whole `Authorization` value (None: no header at all). Built lazily so that
# times are fresh when each test runs.
HS256_CASES: dict[str, Callable[[], str | None]] = {
    "no credentials": lambda: None,
    "empty header": lambda: "",
    "basic scheme": lambda: "Basic YWxpY2U6cGFzc3dvcmQ=",
    "token without scheme": lambda: hs(),
    "empty bearer": lambda: "Bearer ",
    "malformed: one segment": lambda: "Bearer not-a-jwt",
    "malformed: two segments": lambda: f"Bearer {segment({'alg': 'HS256'})}.{segment(claims())}",
    "malformed: bad base64": lambda: "Bearer !!!.@@@.###",
    "malformed: header not json": lambda: f"Bearer {b64(b'{nope')}.{segment(claims())}.c2ln",
    "malformed: payload not json": lambda: (
        f"Bearer {segment({'alg': 'HS256', 'typ': 'JWT'})}.{b64(b'[1,2')}.c2ln"),
    "malformed: payload is a list": lambda: "Bearer " + hmac_signed(
        {"alg": "HS256", "typ": "JWT"}, [1, 2], SECRET.encode()),  # type: ignore[arg-type]
    "malformed: 4 KiB of garbage": lambda: "Bearer " + "A" * 4096,
    "alg none": lambda: f"Bearer {unsigned('none')}",
    "alg None, mixed case": lambda: f"Bearer {unsigned('nOnE')}",
    "alg none with a signature": lambda: f"Bearer {unsigned('none')}c2lnbmF0dXJl",
    "signature stripped": lambda: "Bearer " + hs().rsplit(".", 1)[0] + ".",
    "wrong secret": lambda: f"Bearer {hs('another-secret-of-enough-length-' + 'y' * 32)}",
    "wrong algorithm: HS512 with the right secret": lambda: f"Bearer {hs(algorithm='HS512')}",
    "header alg swapped to HS512": lambda: f"Bearer {swapped_header(hs(), alg='HS512')}",
    "RS256 token to an HS256 server": lambda: (
        f"Bearer {jwt.encode(claims(), _OTHER_RSA, algorithm='RS256')}"),
    "ES256 token to an HS256 server": lambda: (
        f"Bearer {jwt.encode(claims(), _OTHER_EC, algorithm='ES256')}"),
    "tampered payload: sub": lambda: f"Bearer {tampered(hs(sub='mallory'), sub='alice')}",
    "tampered payload: exp extended": lambda: (
        f"Bearer {tampered(hs(exp=int(time.time()) - 5), exp=int(time.time()) + 9999)}"),
    "expired": lambda: f"Bearer {hs(exp=int(time.time()) - 30)}",
    "no exp": lambda: f"Bearer {hs(exp=None)}",
    "exp not a number": lambda: f"Bearer {hs(exp='tomorrow')}",
    "nbf in the future": lambda: f"Bearer {hs(nbf=int(time.time()) + 600)}",
    "iat in the future": lambda: f"Bearer {hs(iat=int(time.time()) + 600)}",
    "wrong issuer": lambda: f"Bearer {hs(iss='https://evil.test')}",
    "no issuer": lambda: f"Bearer {hs(iss=None)}",
    "wrong audience": lambda: f"Bearer {hs(aud='someone-else')}",
    "audience list without ours": lambda: f"Bearer {hs(aud=['a', 'b'])}",
    "no audience": lambda: f"Bearer {hs(aud=None)}",
    "no sub": lambda: f"Bearer {hs(sub=None)}",
    "empty sub": lambda: f"Bearer {hs(sub='')}",
    "blank sub": lambda: f"Bearer {hs(sub='   ')}",
    "sub not a string": lambda: f"Bearer {hs(sub=12345)}",
    "sub an object": lambda: f"Bearer {hs(sub={'name': 'alice'})}",
    "stream ticket as a bearer token": lambda: (
        f"Bearer {hs(typ='stream-ticket', job_id='00000000-0000-4000-8000-000000000000')}"),
}
