"""The one aligner cache: shares profiles and indexes across k and strategy, bounded, builds off the event loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

import middleware.data.profile as profile_module
import middleware.retrieval.chrf as chrf_module
from middleware.errors import ProfileError, UnknownCountryError
from middleware.options import AlignOptions
from middleware.retrieval.cache import LRU, AlignerCache
from middleware.retrieval.strategies import STRATEGIES


@pytest.fixture()
def counted(monkeypatch):
    """Fresh profile and index caches, and a count of chrF++ indexes built."""
    built = []
    real = chrf_module.ChrfIndex

    def counting(keys):
        built.append(len(keys))
        return real(keys)

    monkeypatch.setattr(chrf_module, "ChrfIndex", counting)
    profile_module.builtin_profile.cache_clear()
    chrf_module._index.cache_clear()
    yield built
    profile_module.builtin_profile.cache_clear()
    chrf_module._index.cache_clear()


def test_varied_k_and_strategy_build_the_profile_and_index_once(counted):
    cache = AlignerCache()
    aligners = [cache.get(cache.key(AlignOptions(country="ro", language="en", k=k, strategy=s)))
                for k in range(1, 11) for s in STRATEGIES]
    assert cache.builds == len(aligners) == 10 * len(STRATEGIES)
    # "cultural" is an instruction without demonstrations; every other strategy picks 1..k.
    assert all(0 < len(a.demonstrations("How important is family in your life?")) <= a.k for a in aligners
               if a.strategy_name != "cultural")
    assert len(counted) == 1  # one chrF++ index for all of them
    assert profile_module.builtin_profile.cache_info().misses == 1  # one profile
    assert len({id(a.profile) for a in aligners}) == 1
    assert {a.k for a in aligners} == set(range(1, 11))
    # Another country in the same language has the same retrieval keys: the index is shared too.
    usa = cache.get(cache.key(AlignOptions(country="usa", language="en")))
    assert usa.demonstrations("How important is family in your life?")
    assert usa.profile is not aligners[0].profile and usa.profile.shared_keys == aligners[0].profile.shared_keys
    assert len(counted) == 1


def test_keys_are_normalised_and_checked():
    cache = AlignerCache()
    assert cache.key(AlignOptions(country="Romania", language="English")) == cache.key(
        AlignOptions(country="ROU", language="en"))
    assert cache.key(AlignOptions(country="none")) is None
    with pytest.raises(UnknownCountryError):
        cache.key(AlignOptions(country="Atlantis"))
    with pytest.raises(ProfileError, match="no profiles are registered"):
        cache.key(AlignOptions(profile="/etc/passwd"))  # requests name profiles, never paths


def test_bounded_least_recently_used_first():
    cache = AlignerCache(size=3)
    keys = [cache.key(AlignOptions(country="ro", language="en", k=k)) for k in (1, 2, 3)]
    for key in keys:
        cache.get(key)
    cache.get(keys[0])  # used again: now the most recent
    cache.get(cache.key(AlignOptions(country="ro", language="en", k=4)))
    assert len(cache) == 3 and cache.builds == 4
    cache.get(keys[0])  # kept: no build
    assert cache.builds == 4
    cache.get(keys[1])  # the least recently used one was dropped: built again
    assert cache.builds == 5 and len(cache) == 3


async def test_aget_builds_in_a_worker_thread_once_for_concurrent_requests(monkeypatch):
    cache = AlignerCache()
    threads = []
    real = cache._build

    def build(key, seed):
        threads.append(threading.current_thread())
        return real(key, seed)

    monkeypatch.setattr(cache, "_build", build)
    key = cache.key(AlignOptions(country="ro", language="en", k=7))
    got = await asyncio.gather(*(cache.aget(key) for _ in range(8)))
    assert len({id(a) for a in got}) == 1 and cache.builds == 1
    assert threads and threads[0] is not threading.main_thread()


def test_lru_builds_once_across_threads():
    lru: LRU[int] = LRU(4)
    calls = []
    gate = threading.Event()

    def build():
        calls.append(1)
        gate.wait(1)
        return 42

    workers = [threading.Thread(target=lambda: lru.get("k", build)) for _ in range(5)]
    for w in workers:
        w.start()
    gate.set()
    for w in workers:
        w.join()
    assert calls == [1] and lru.get("k", build) == 42


def test_a_seed_draws_the_same_demonstrations_every_time():
    """Seeded aligners are built afresh: a cached one would carry its generator on from the last request."""
    from middleware import align

    messages = [{"role": "user", "content": "Is it important to have a job?"}]
    draws = [align(messages, country="ro", language="en", strategy="random", seed=3)[0]["content"] for _ in range(3)]
    assert len(set(draws)) == 1
    assert align(messages, country="ro", language="en", strategy="random", seed=4)[0]["content"] != draws[0]
    cache = AlignerCache()
    key = cache.key(AlignOptions(country="ro", language="en", strategy="random"))
    assert cache.get(key, seed=1) is not cache.get(key, seed=1) and cache.get(key) is cache.get(key)
