"""The shared-memory arena for medium arguments: copies in, copies out, reuse, limits."""

from __future__ import annotations

import os
import pickle
import secrets
import sys
from collections.abc import Iterator

import numpy as np
import pytest

import iris
from iris import _serialization as s
from iris._arena import Arena, view_arena
from iris._store import SHM_DIR


@pytest.fixture
def arena() -> Iterator[Arena]:
    a = Arena("t" + secrets.token_hex(4), chunk_bytes=1 << 20, max_bytes=2 << 20)
    yield a
    a.close()


def _round_trip(location: bytes) -> object:
    header, bufs, _region = view_arena(location)
    return pickle.loads(header, buffers=bufs)


def test_values_round_trip_read_only_and_the_space_is_reused(arena: Arena) -> None:
    a = np.arange(5000, dtype=np.float64)
    slot = arena.write(*s.dumps(a))
    assert slot is not None
    b = _round_trip(slot.location)
    np.testing.assert_array_equal(a, b)
    assert not b.flags.writeable  # like every value a task receives
    del b
    arena.release(slot)
    slot2 = arena.write(*s.dumps(np.zeros(5000)))  # the released region, reused
    assert slot2 is not None and slot2.off == slot.off
    np.testing.assert_array_equal(_round_trip(slot2.location), np.zeros(5000))


def test_a_full_arena_says_no_and_recovers(arena: Arena) -> None:
    header, bufs = s.dumps(np.ones(20_000))  # 160 KB: six fit in a 1 MiB chunk
    slots = []
    while (slot := arena.write(header, bufs)) is not None:
        slots.append(slot)
    assert len(slots) == 12  # two chunks of six: the cap
    assert arena.write(b"x" * 300_000, []) is None  # over a quarter chunk: never
    for slot in slots[:6]:
        arena.release(slot)
    again = arena.write(header, bufs)
    assert again is not None and again.chunk is slots[0].chunk


def test_bad_locations_are_refused(arena: Arena) -> None:
    slot = arena.write(b"hello", [])
    assert slot is not None
    with pytest.raises(ValueError):
        view_arena(b"\x00\x01")
    with pytest.raises(ValueError):
        view_arena(slot.location[:-3] + b"/..")
    with pytest.raises(ValueError):  # a name that is not an arena chunk
        view_arena(slot.location.replace(b"-arena-", b"-xxxxx-"))
    beyond = bytearray(slot.location)
    beyond[0:8] = (1 << 40).to_bytes(8, "big")
    with pytest.raises(ValueError, match="outside"):
        view_arena(bytes(beyond))


def test_close_unlinks_every_chunk() -> None:
    a = Arena("t" + secrets.token_hex(4), chunk_bytes=1 << 20)
    slot = a.write(b"x" * 1000, [])
    assert slot is not None
    path = os.path.join(SHM_DIR, slot.chunk.name)
    assert os.path.exists(path) and os.stat(path).st_mode & 0o777 == 0o600
    a.close()
    assert not os.path.exists(path)
    assert a.write(b"x", []) is None


def test_medium_arguments_are_snapshots_and_freed(cluster: iris.ClusterContext) -> None:
    from iris import _api

    total = iris.remote(lambda a: float(a.sum()))
    medium = np.ones(5000)  # 40 KB: through the arena
    ref = total.remote(medium)
    medium[:] = 2.0  # after .remote() returned
    assert iris.get(ref) == 5000.0
    refs = [total.remote(np.full(4000, float(i))) for i in range(300)]
    assert iris.get(refs) == [4000.0 * i for i in range(300)]
    arena = _api._client.arena
    assert arena is not None and arena.chunks
    assert all(c.live == 0 for c in arena.chunks)  # every slot released with its task


def test_medium_arguments_for_another_machine_travel_inline(cluster: iris.ClusterContext) -> None:
    from iris import _api
    from iris._protocol import ValueKind
    from iris._records import WorkerLink
    from iris._values import from_value
    from iris.testing import wait_until

    client = _api._client
    f = iris.remote(lambda a: a)
    wait_until(lambda: client.local_workers == 2, 30, "both workers to register")
    iris.get(f.remote(0))  # the function is pickled at its first call
    with client.lock:  # keep the reactor from dispatching while we look at the queue
        client.submit_scheduled = True  # as if a dispatch were due: the task stays queued
        ref = f.remote(np.arange(3000.0))
        task = next(t for t in client.submit_q if t.oids[0] == ref.oid)
        assert task.args_value.kind == ValueKind.ARENA
        elsewhere = WorkerLink("w-far", "tcp://192.0.2.1:1", "another-host", sock=None)
        rec = client._task_record(task, elsewhere)
        assert rec.args.kind == ValueKind.INLINE
        args, kwargs = from_value(rec.args)
        np.testing.assert_array_equal(args[0], np.arange(3000.0))
        client._on_submits()  # now send it to a worker of this machine
    np.testing.assert_array_equal(iris.get(ref), np.arange(3000.0))


def test_a_full_shared_memory_means_inline_not_a_crash(tmp_path) -> None:
    import subprocess

    small = tmp_path / "shm"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(small)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        # In a child process: a SIGBUS there would not take pytest down with it.
        code = (
            "import numpy as np, iris._arena as a, iris._serialization as s\n"
            "ar = a.Arena('tfull', chunk_bytes=1 << 20)\n"
            "got = [ar.write(*s.dumps(np.ones(5000))) for _ in range(200)]\n"
            "print(sum(g is not None for g in got), sum(g is None for g in got))\n"
            "ar.close()\n")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, IRIS_SHM_DIR=str(small)), timeout=60)
        assert out.returncode == 0, out.stderr
        written, refused = map(int, out.stdout.split())
        assert written > 0 and refused > 0  # one chunk fit in 2 MiB, a second did not
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_values_are_read_in_place_and_the_region_outlives_its_views(arena: Arena) -> None:
    import gc
    import weakref

    a = np.arange(5000, dtype=np.float64)
    slot = arena.write(*s.dumps(((a,), {})))
    assert slot is not None
    header, views, region = view_arena(slot.location)
    (b,), _ = pickle.loads(header, buffers=views)
    del views
    np.testing.assert_array_equal(a, b)
    assert not b.flags.writeable
    gone: list[int] = []
    weakref.finalize(region, gone.append, 1)
    del region
    view = b[10:20]
    del b
    gc.collect()
    assert not gone  # a view of the argument still reads the region
    assert view[0] == 10.0
    del view
    assert gone == [1]


def test_an_argument_a_task_keeps_is_not_reused_until_let_go(cluster: iris.ClusterContext
                                                            ) -> None:
    from iris import _api
    from iris.testing import wait_until

    @iris.remote
    class Keeper:
        def __init__(self) -> None:
            self.kept = None

        def keep(self, a: np.ndarray) -> float:
            self.kept = a[100:200]  # a view into the owner's arena, read in place
            return float(a.sum())

        def total(self) -> float:
            return float(self.kept.sum()) if self.kept is not None else -1.0

        def drop(self) -> None:
            self.kept = None

    k = Keeper.remote()
    assert iris.get(k.keep.remote(np.ones(5000))) == 5000.0
    client = _api._client
    wait_until(lambda: any(w.kept for w in client.workers.values()), 10, "slot kept")
    # Plenty of other medium arguments: the arena's space is reused, but not the kept part.
    total = iris.remote(lambda a: float(a[0]))
    for _ in range(3):
        refs = [total.remote(np.full(5000, float(i))) for i in range(500)]
        assert iris.get(refs) == [float(i) for i in range(500)]
        assert iris.get(k.total.remote()) == 100.0
    iris.get(k.drop.remote())
    wait_until(lambda: not any(w.kept for w in client.workers.values()), 10,
               "the worker says the kept views are gone")
    arena = client.arena
    assert arena is not None
    wait_until(lambda: all(c.live == 0 for c in arena.chunks), 10, "every slot released")
    iris.kill(k)
