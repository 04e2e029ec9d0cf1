"""The packed-Paillier codec's running sum: the edge adds each update to the bytes the previous addition returned,
and the codec does not parse its own last sum again — the result is the same as parsing it."""

from __future__ import annotations

import numpy as np

from shared.crypto.packing import packing_spec
from shared.crypto.paillier import generate_keypair
from shared.fl_codec import PackedPaillierCodec


def test_a_running_sum_equals_the_sum_of_fresh_parses() -> None:
    keys = generate_keypair(2048)
    spec = packing_spec(keys.public_key, clip=1.0, max_clients=8)
    edge = PackedPaillierCodec(keys.public_key, spec, params=200)
    cloud = PackedPaillierCodec(keys.public_key, spec, params=200, private_key=keys.private_key, min_clients=2)
    rng = np.random.default_rng(0)
    updates = [rng.uniform(-0.5, 0.5, 200) for _ in range(4)]
    bodies = [edge.encode(u) for u in updates]
    total = None
    for body in bodies:
        total = edge.add(total, body)
    assert total is not None
    again = None
    for body in bodies:  # a copy of the running sum each time: a new object, so it is parsed
        again = edge.add(None if again is None else bytes(bytearray(again)), body)
    assert total == again
    np.testing.assert_allclose(cloud.decode_sum(total, 4), np.sum(updates, axis=0), atol=4 * spec.step)
    assert cloud.decode_sum(cloud.add_sums(total, total), 8).shape == (200,)  # a sum added to itself: parsed twice
