"""Paillier with g = n + 1: CSPRNG keys, gmpy2 arithmetic, values that lightphe decrypts and adds.

Why not lightphe's own key generation: `lightphe.cryptosystems.Paillier.generate_keys` draws its primes
with `sympy.randprime` and its per-encryption `r` with `random.randint` — the Mersenne Twister, whose
state can be recovered from its outputs. Here primes and `r` come from `secrets` (the OS CSPRNG) and
lightphe only ever receives finished keys (`lightphe_keys`, `to_lightphe`), for interoperability tests.

Ciphertexts are plain ``int`` values in [1, n²) — the same type lightphe's `Ciphertext.value` holds —
so either implementation can decrypt or add the other's output.

Cost model: encryption is ``(1 + m·n) · r^n mod n²``; the ``r^n`` exponentiation is the whole cost
and does not depend on the message, so it can be done ahead of time (`precompute_noise`, the offline
phase) and spent later, once each. Decryption uses CRT over p² and q² (~3-4x faster than mod n²).
"""

from __future__ import annotations

import hashlib
import math
import secrets
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import gmpy2

if TYPE_CHECKING:
    from lightphe import LightPHE

MIN_MODULUS_BITS = 2048
"""Smallest modulus accepted outside tests (NIST SP 800-57: 2048-bit factoring ≈ 112-bit security)."""

_PRIME_TEST_ROUNDS = 64
_PUBLIC_MAGIC = b"CMP1"
_PRIVATE_MAGIC = b"CMS1"


class InsecureKeyError(ValueError):
    """A modulus below MIN_MODULUS_BITS was requested or loaded without the explicit test-only flag."""


class CiphertextError(ValueError):
    """Bytes or an integer that cannot be a ciphertext under this key (wrong width, range, or not a unit)."""


@dataclass(frozen=True)
class PaillierPublicKey:
    """n only (g = n + 1 is implied): what watches and the edge hold. Carries no p, q, φ or λ."""

    n: int

    def __post_init__(self) -> None:
        if self.n < 15 or self.n % 2 == 0:
            raise ValueError("Paillier modulus must be an odd composite > 15")

    @property
    def g(self) -> int:
        return self.n + 1

    @cached_property
    def n_squared(self) -> int:
        return self.n * self.n

    @property
    def bits(self) -> int:
        return self.n.bit_length()

    @property
    def ciphertext_bytes(self) -> int:
        """Fixed serialised width of one ciphertext: enough bytes for any value below n²."""
        return (self.n_squared.bit_length() + 7) // 8

    @cached_property
    def key_id(self) -> str:
        """Short fingerprint of n, so vectors encrypted under different keys are never added together."""
        return hashlib.sha256(_int_bytes(self.n, (self.bits + 7) // 8)).hexdigest()[:16]


@dataclass(frozen=True)
class PaillierPrivateKey:
    """The factorisation of n and the CRT constants derived from it: only the cloud coordinator holds this."""

    public_key: PaillierPublicKey
    p: int = field(repr=False)
    q: int = field(repr=False)

    def __post_init__(self) -> None:
        if self.p * self.q != self.public_key.n or self.p == self.q:
            raise ValueError("p and q must be distinct factors of n")

    @cached_property
    def phi(self) -> int:
        """φ(n) = (p−1)(q−1): what lightphe's Paillier calls its private key."""
        return (self.p - 1) * (self.q - 1)

    @cached_property
    def _crt(self) -> _CrtConstants:
        return _CrtConstants.build(self.p, self.q)


@dataclass(frozen=True)
class _CrtConstants:
    p: Any
    q: Any
    p_squared: Any
    q_squared: Any
    hp: Any  # L_p(g^(p−1) mod p²)^−1 mod p
    hq: Any
    q_inv_p: Any  # q^−1 mod p, to recombine residues mod p and mod q
    q2_inv_p2: Any  # (q²)^−1 mod p², to recombine residues mod p² and mod q²
    n_mod_order_p2: Any  # n mod p(p−1): r^n mod p² = r^(n mod |Z*_{p²}|) mod p²
    n_mod_order_q2: Any

    @classmethod
    def build(cls, p_int: int, q_int: int) -> _CrtConstants:
        p, q = gmpy2.mpz(p_int), gmpy2.mpz(q_int)
        n = p * q
        p2, q2 = p * p, q * q
        g = n + 1
        hp = gmpy2.invert((gmpy2.powmod(g, p - 1, p2) - 1) // p, p)
        hq = gmpy2.invert((gmpy2.powmod(g, q - 1, q2) - 1) // q, q)
        return cls(
            p=p, q=q, p_squared=p2, q_squared=q2, hp=hp, hq=hq,
            q_inv_p=gmpy2.invert(q, p), q2_inv_p2=gmpy2.invert(q2, p2),
            n_mod_order_p2=n % (p * (p - 1)), n_mod_order_q2=n % (q * (q - 1)),
        )


@dataclass(frozen=True)
class PaillierKeyPair:
    public_key: PaillierPublicKey
    private_key: PaillierPrivateKey = field(repr=False)


# --- key generation ----------------------------------------------------------------------------


def generate_keypair(bits: int = MIN_MODULUS_BITS, *, insecure_test_only: bool = False) -> PaillierKeyPair:
    """Two distinct `secrets`-drawn primes of bits/2 each (top two bits set, so n has exactly `bits` bits).

    Refuses `bits` < 2048 unless `insecure_test_only=True` (unit tests that exercise slot arithmetic,
    not key strength). Also rejects p, q closer than 2^(bits/2 − 100) (Fermat factoring) and checks
    gcd(n, φ(n)) = 1, which Paillier needs for g = n + 1 decryption.
    """
    _check_modulus_bits(bits, insecure_test_only)
    if bits % 2 or bits < 32:
        raise ValueError("modulus bits must be even and at least 32")
    half = bits // 2
    min_gap_bits = max(0, half - 100)
    while True:
        p, q = _random_prime(half), _random_prime(half)
        if p == q or abs(p - q).bit_length() <= min_gap_bits:
            continue
        n = p * q
        if n.bit_length() != bits or math.gcd(n, (p - 1) * (q - 1)) != 1:
            continue
        public = PaillierPublicKey(n)
        return PaillierKeyPair(public, PaillierPrivateKey(public, p, q))


def _random_prime(bits: int) -> int:
    top_two = 0b11 << (bits - 2)
    while True:
        candidate = secrets.randbits(bits) | top_two | 1
        if gmpy2.is_prime(candidate, _PRIME_TEST_ROUNDS):
            return candidate


def _check_modulus_bits(bits: int, insecure_test_only: bool) -> None:
    if bits < MIN_MODULUS_BITS and not insecure_test_only:
        raise InsecureKeyError(f"Paillier modulus of {bits} bits < {MIN_MODULUS_BITS} (test-only flag not set)")


# --- encryption, decryption, addition ----------------------------------------------------------


def random_unit(public_key: PaillierPublicKey) -> int:
    """r uniform in Z*_n from the OS CSPRNG (the encryption randomness)."""
    n = public_key.n
    while True:
        r = secrets.randbelow(n - 1) + 1
        if math.gcd(r, n) == 1:
            return r


def precompute_noise(key: PaillierPublicKey | PaillierPrivateKey, count: int) -> list[int]:
    """`count` fresh values r^n mod n², the expensive half of encryption, computed before any message exists.

    With the public key this is one 2048-bit-exponent powmod mod n² per value; with the private key the
    same value is computed by CRT mod p² and q² with exponents reduced mod p(p−1), q(q−1) (~3x faster).
    Each value must be spent on exactly one ciphertext: anyone who sees two ciphertexts that share a
    noise value learns the difference of their plaintexts, and whoever reads a stored value can decrypt
    the ciphertext it was spent on. So a pool is secret, single-use, and lives in memory only.
    """
    public = key.public_key if isinstance(key, PaillierPrivateKey) else key
    if count < 0:
        raise ValueError("count must be >= 0")
    if isinstance(key, PaillierPrivateKey):
        crt = key._crt
        out = []
        for _ in range(count):
            r = random_unit(public)
            rp = gmpy2.powmod(r, crt.n_mod_order_p2, crt.p_squared)
            rq = gmpy2.powmod(r, crt.n_mod_order_q2, crt.q_squared)
            out.append(int(rq + crt.q_squared * (((rp - rq) * crt.q2_inv_p2) % crt.p_squared)))
        return out
    n, n2 = gmpy2.mpz(public.n), gmpy2.mpz(public.n_squared)
    return [int(gmpy2.powmod(random_unit(public), n, n2)) for _ in range(count)]


def encrypt(public_key: PaillierPublicKey, plaintext: int, *, noise: int | None = None) -> int:
    """E(m) = (1 + m·n) · r^n mod n² for 0 ≤ m < n; `noise` is a precomputed r^n (spent once), else fresh."""
    n = public_key.n
    if not 0 <= plaintext < n:
        raise ValueError("plaintext must be in [0, n); encode negatives before encrypting")
    rn = precompute_noise(public_key, 1)[0] if noise is None else noise
    n2 = public_key.n_squared
    return int(((1 + plaintext * n) % n2) * gmpy2.mpz(rn) % n2)


def decrypt(private_key: PaillierPrivateKey, ciphertext: int) -> int:
    """m from CRT: m_p = L_p(c^(p−1) mod p²)·h_p mod p, likewise mod q, recombined (Paillier'99 §7).

    The exponents p−1 and q−1 are secret, so they go through gmpy2's constant-time `powmod_sec`.
    """
    _check_ciphertext_range(private_key.public_key, ciphertext)
    k = private_key._crt
    c = gmpy2.mpz(ciphertext)
    mp = ((gmpy2.powmod_sec(c % k.p_squared, k.p - 1, k.p_squared) - 1) // k.p) * k.hp % k.p
    mq = ((gmpy2.powmod_sec(c % k.q_squared, k.q - 1, k.q_squared) - 1) // k.q) * k.hq % k.q
    return int(mq + k.q * (((mp - mq) * k.q_inv_p) % k.p))


def add(public_key: PaillierPublicKey, ciphertext_a: int, ciphertext_b: int) -> int:
    """E(a)·E(b) mod n² = E(a + b mod n): needs only the public key (what the edge hub does)."""
    return int(gmpy2.mpz(ciphertext_a) * ciphertext_b % public_key.n_squared)


def add_all(public_key: PaillierPublicKey, ciphertexts: Iterable[int]) -> int:
    """Product of many ciphertexts mod n² (E of the sum), reducing after each multiply."""
    n2 = gmpy2.mpz(public_key.n_squared)
    items = iter(ciphertexts)
    acc = gmpy2.mpz(next(items, 1))  # the first as it is: E(0) = 1 for none
    for c in items:
        acc = acc * c % n2
    return int(acc)


def _check_ciphertext_range(public_key: PaillierPublicKey, ciphertext: int) -> None:
    if not 0 < ciphertext < public_key.n_squared:
        raise CiphertextError("ciphertext outside (0, n²)")


# --- serialisation -----------------------------------------------------------------------------


def _int_bytes(value: int, width: int) -> bytes:
    return int(value).to_bytes(width, "big")


def public_key_to_bytes(public_key: PaillierPublicKey) -> bytes:
    """b"CMP1" | u16 byte width | n big-endian."""
    width = (public_key.bits + 7) // 8
    return _PUBLIC_MAGIC + struct.pack(">H", width) + _int_bytes(public_key.n, width)


def public_key_from_bytes(data: bytes, *, insecure_test_only: bool = False) -> PaillierPublicKey:
    if len(data) < 6 or data[:4] != _PUBLIC_MAGIC:
        raise ValueError("not a CardioMesh Paillier public key")
    (width,) = struct.unpack(">H", data[4:6])
    if len(data) != 6 + width:
        raise ValueError("public key length does not match its header")
    key = PaillierPublicKey(int.from_bytes(data[6:], "big"))
    _check_modulus_bits(key.bits, insecure_test_only)
    return key


def private_key_to_bytes(private_key: PaillierPrivateKey) -> bytes:
    """b"CMS1" | u16 prime byte width | p | q (n is recomputed; store this encrypted at rest)."""
    width = (max(private_key.p, private_key.q).bit_length() + 7) // 8
    factors = _int_bytes(private_key.p, width) + _int_bytes(private_key.q, width)
    return _PRIVATE_MAGIC + struct.pack(">H", width) + factors


def private_key_from_bytes(data: bytes, *, insecure_test_only: bool = False) -> PaillierPrivateKey:
    if len(data) < 6 or data[:4] != _PRIVATE_MAGIC:
        raise ValueError("not a CardioMesh Paillier private key")
    (width,) = struct.unpack(">H", data[4:6])
    if len(data) != 6 + 2 * width:
        raise ValueError("private key length does not match its header")
    p = int.from_bytes(data[6 : 6 + width], "big")
    q = int.from_bytes(data[6 + width :], "big")
    if not (gmpy2.is_prime(p, _PRIME_TEST_ROUNDS) and gmpy2.is_prime(q, _PRIME_TEST_ROUNDS)):
        raise ValueError("private key factors are not prime")
    public = PaillierPublicKey(p * q)
    _check_modulus_bits(public.bits, insecure_test_only)
    return PaillierPrivateKey(public, p, q)


def ciphertext_to_bytes(public_key: PaillierPublicKey, ciphertext: int) -> bytes:
    """Fixed width (`public_key.ciphertext_bytes`, 512 B for a 2048-bit n), big-endian."""
    _check_ciphertext_range(public_key, ciphertext)
    return _int_bytes(ciphertext, public_key.ciphertext_bytes)


def ciphertext_from_bytes(public_key: PaillierPublicKey, data: bytes, *, check_unit: bool = True) -> int:
    """Rejects wrong width, values outside (0, n²) and non-units (gcd(c, n) ≠ 1 is never an encryption).

    `check_unit=False` leaves the last check to the caller, who runs `check_units` once over many ciphertexts.
    """
    if len(data) != public_key.ciphertext_bytes:
        raise CiphertextError(f"ciphertext must be {public_key.ciphertext_bytes} bytes, got {len(data)}")
    c = int.from_bytes(data, "big")
    _check_ciphertext_range(public_key, c)
    if check_unit and gmpy2.gcd(c, public_key.n) != 1:
        raise CiphertextError("ciphertext is not a unit mod n")
    return c


def check_units(public_key: PaillierPublicKey, ciphertexts: Iterable[int]) -> None:
    """Raise unless every ciphertext is a unit mod n, with one gcd for all of them.

    Their product mod n is a unit exactly when each of them is: units are closed under multiplication, and a
    prime factor of n that divides one ciphertext divides the product. A multiply mod n costs a fraction of a
    gcd, and the edge checks every ciphertext of every update it receives (bench/fl_scale.py).
    """
    n = gmpy2.mpz(public_key.n)
    product = gmpy2.mpz(1)
    for c in ciphertexts:
        product = product * c % n
    if gmpy2.gcd(product, n) != 1:
        raise CiphertextError("a ciphertext is not a unit mod n")


# --- lightphe interoperability -----------------------------------------------------------------


def lightphe_keys(key: PaillierPublicKey | PaillierPrivateKey) -> dict[str, dict[str, int]]:
    """The key dict lightphe's Paillier expects: public {n, g}, and private {phi} only for a private key."""
    public = key.public_key if isinstance(key, PaillierPrivateKey) else key
    keys: dict[str, dict[str, int]] = {"public_key": {"n": public.n, "g": public.g}}
    if isinstance(key, PaillierPrivateKey):
        keys["private_key"] = {"phi": key.phi}
    return keys


def to_lightphe(key: PaillierPublicKey | PaillierPrivateKey) -> LightPHE:
    """A lightphe Paillier built from our keys (never from its own keygen). Imported lazily: ~0.5 s."""
    from lightphe import LightPHE

    return LightPHE(algorithm_name="Paillier", keys=lightphe_keys(key))
