"""Keys made once per session: key generation is the slow part, and 2 shared cores run the suite."""

from __future__ import annotations

import pytest

from shared.crypto.paillier import PaillierKeyPair, generate_keypair


@pytest.fixture(scope="session")
def keys_2048() -> PaillierKeyPair:
    """The production path: a 2048-bit modulus from the CSPRNG."""
    return generate_keypair(2048)


@pytest.fixture(scope="session")
def keys_small() -> PaillierKeyPair:
    """Test-only 256-bit modulus for property tests of slot arithmetic: the packing layout is derived from
    bits(n), so a small n exercises the same carries and boundaries with many more plaintexts per second.
    """
    return generate_keypair(256, insecure_test_only=True)
