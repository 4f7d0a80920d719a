"""Batch calls from several Python threads at once give correct results: the C side keeps no
shared mutable state, and with the GIL released the calls really overlap."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor
from types import ModuleType

from native_helpers import SigCorpus

from twinchain.native import fallback
from twinchain.primitives.hashing import Domain, domain_key

THREADS = 8
ROUNDS = 3


def test_concurrent_batches(impl: ModuleType, corpus: SigCorpus) -> None:
    key = domain_key(Domain.TRIE_BRANCH)
    jobs = []
    for t in range(THREADS):
        rng = random.Random(t)
        lo = t * 1000
        pks = corpus.pubkeys[lo : lo + 1000]
        msgs = list(corpus.messages[lo : lo + 1000])
        for i in range(t, 1000, THREADS + 1):  # a different pattern of bad items per thread
            msgs[i] = rng.randbytes(32)
        sigs = corpus.signatures[lo : lo + 1000]
        leaves = [rng.randbytes(rng.choice([32, 68, 100])) for _ in range(20_000 + t)]
        expect = (
            fallback.verify_batch(pks, msgs, sigs),
            fallback.merkle_root(leaves),
            fallback.hash_many(key, leaves[:5000]),
        )
        jobs.append((pks, msgs, sigs, leaves, expect))
    start = threading.Barrier(THREADS)

    def work(t: int) -> int:
        pks, msgs, sigs, leaves, expect = jobs[t]
        start.wait()
        for _ in range(ROUNDS):
            got = (
                impl.verify_batch(pks, msgs, sigs),
                impl.merkle_root(leaves),
                impl.hash_many(key, leaves[:5000]),
            )
            assert got == expect
        return t

    with ThreadPoolExecutor(THREADS) as pool:
        assert sorted(pool.map(work, range(THREADS))) == list(range(THREADS))
