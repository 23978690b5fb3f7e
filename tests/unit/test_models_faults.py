"""Fault injection inside a model instance: latency, error rate, bounded memory growth."""

from __future__ import annotations

import time

import pytest

from serving.faults import Faults, FaultWatcher, write_faults
from serving.models.fault_injector import MIB, FaultInjector, touched_block


class FakeClock:
    def __init__(self):
        self.now_s = 0.0

    def __call__(self):
        return self.now_s


def _injector(tmp_path, **kw) -> FaultInjector:
    return FaultInjector(FaultWatcher(tmp_path / "faults.json"), **kw)


def test_faults_file_changes_are_seen_per_poll(tmp_path):
    inj = _injector(tmp_path)
    assert inj.poll() == Faults()
    write_faults(tmp_path / "faults.json", Faults(added_latency_ms=250))
    assert inj.poll().added_latency_ms == 250
    (tmp_path / "faults.json").unlink()
    assert inj.poll() == Faults()


def test_added_latency_sleeps_per_call(tmp_path):
    slept = []
    inj = _injector(tmp_path, sleep=slept.append)
    inj.delay(Faults())
    inj.delay(Faults(added_latency_ms=150))
    assert slept == [0.15]


def test_per_item_latency_grows_with_the_batch(tmp_path):
    slept = []
    inj = _injector(tmp_path, sleep=slept.append)
    faults = Faults(added_latency_ms=20, added_latency_per_item_ms=5)
    inj.delay(faults, batch_size=1)
    inj.delay(faults, batch_size=8)
    assert slept == pytest.approx([0.025, 0.060])


def test_per_item_latency_out_of_range_is_refused():
    with pytest.raises(ValueError, match="added_latency_per_item_ms=-1"):
        Faults(added_latency_per_item_ms=-1).validate()


@pytest.mark.parametrize("ratio,low,high", [(0.0, 0, 0), (1.0, 1000, 1000), (0.3, 240, 360)])
def test_error_rate_fails_that_fraction(tmp_path, ratio, low, high):
    inj = _injector(tmp_path, seed=42)
    errors = [inj.error_for(Faults(error_rate_ratio=ratio)) for _ in range(1000)]
    failed = [e for e in errors if e]
    assert low <= len(failed) <= high
    assert all(e.startswith("injected fault:") for e in failed)


def test_memory_grows_at_rate_is_capped_and_released(tmp_path):
    clock = FakeClock()
    inj = _injector(tmp_path, clock=clock, memory_cap_bytes=3 * MIB)
    leak = Faults(memory_growth_mb_per_s=2)
    assert inj.grow_memory(leak) == 0  # first call starts the clock
    clock.now_s = 0.5
    assert inj.grow_memory(leak) == 1 * MIB  # 2 MiB/s * 0.5 s
    clock.now_s = 5.0
    assert inj.grow_memory(leak) == 3 * MIB  # capped
    assert sum(len(b) for b in inj.leaked) == 3 * MIB
    assert inj.grow_memory(Faults()) == 0 and inj.leaked == []


def test_only_one_instance_per_replica_leaks(tmp_path):
    clock = FakeClock()
    first, second = _injector(tmp_path, clock=clock), _injector(tmp_path, clock=clock)
    leak = Faults(memory_growth_mb_per_s=2)
    for t in (0.0, 1.0):
        clock.now_s = t
        first.grow_memory(leak)
        second.grow_memory(leak)
    assert (first.leaked_bytes, second.leaked_bytes) == (2 * MIB, 0)
    first.grow_memory(Faults())  # cleared: the lock is free again
    clock.now_s = 2.0
    second.grow_memory(leak)
    clock.now_s = 3.0
    assert second.grow_memory(leak) == 2 * MIB


def test_touched_block_is_written():
    block = touched_block(3 * 4096 + 10)
    assert len(block) == 3 * 4096 + 10 and block[0] == 1 and block[4096] == 1 and block[1] == 0


def test_memory_thread_follows_the_faults_file(tmp_path):
    inj = _injector(tmp_path, tick_s=0.02).start()
    try:
        write_faults(tmp_path / "faults.json", Faults(memory_growth_mb_per_s=100))
        deadline = time.monotonic() + 5
        while inj.leaked_bytes == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert inj.leaked_bytes > 0
    finally:
        inj.stop()
    assert inj.leaked_bytes == 0
