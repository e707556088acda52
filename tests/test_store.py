"""The shared-memory store: segments, zero-copy read-only views, clean-up."""

from __future__ import annotations

import os
import pickle
import secrets

import numpy as np
import pytest

from iris import _serialization as s
from iris import _store


@pytest.fixture
def cluster_id() -> str:
    cid = "t" + secrets.token_hex(4)
    yield cid
    _store.remove_cluster_segments(cid)


def test_segment_round_trip_is_a_read_only_view(cluster_id: str) -> None:
    a = np.arange(1_000_000, dtype=np.float64)
    header, bufs = s.dumps(a)
    loc = _store.write_segment(f"iris-{cluster_id}-1", header, bufs)
    assert loc["host"] == _store.host_id()
    assert all(off % 64 == 0 for off, _ in loc["bufs"])
    h, views = _store.map_segment(loc)
    b = pickle.loads(h, buffers=views)
    np.testing.assert_array_equal(a, b)
    assert not b.flags.writeable
    assert not b.flags.owndata  # a view of the mapping, not a copy
    with pytest.raises(ValueError):
        b[0] = 1.0


def test_unlink_keeps_existing_views(cluster_id: str) -> None:
    header, bufs = s.dumps(np.ones(1000))
    loc = _store.write_segment(f"iris-{cluster_id}-2", header, bufs)
    h, views = _store.map_segment(loc)
    _store.unlink_segment(loc["name"])
    assert not os.path.exists(os.path.join(_store.SHM_DIR, loc["name"]))
    assert pickle.loads(h, buffers=views).sum() == 1000.0


def test_cluster_cleanup_removes_every_segment(cluster_id: str) -> None:
    for i in range(3):
        _store.write_segment(f"iris-{cluster_id}-{i}", b"x", [])
    assert _store.remove_cluster_segments(cluster_id) == 3
    assert _store.remove_cluster_segments(cluster_id) == 0


def test_bad_segment_names_are_refused() -> None:
    with pytest.raises(ValueError):
        _store.write_segment("../etc/passwd", b"", [])
    with pytest.raises(ValueError):
        _store.unlink_segment("notiris")


def test_freed_segments_are_recycled_when_nobody_maps_them(cluster_id: str) -> None:
    _store.clear_pool()
    a = np.arange(200_000, dtype=np.float64)
    header, bufs = s.dumps(a)
    loc1 = _store.write_segment(f"iris-{cluster_id}-10", header, bufs)
    ino1 = os.stat(os.path.join(_store.SHM_DIR, loc1["name"])).st_ino
    before = _store.pool_statistics()["reused"]
    _store.release_segment(loc1["name"])
    assert not os.path.exists(os.path.join(_store.SHM_DIR, loc1["name"]))
    b = np.full(200_000, 7.0)
    header, bufs = s.dumps(b)
    loc2 = _store.write_segment(f"iris-{cluster_id}-11", header, bufs)
    assert _store.pool_statistics()["reused"] == before + 1
    assert os.stat(os.path.join(_store.SHM_DIR, loc2["name"])).st_ino == ino1  # same pages
    h, views = _store.map_segment(loc2)
    np.testing.assert_array_equal(pickle.loads(h, buffers=views), b)
    # The old location must not read the new object's bytes.
    with pytest.raises(_store.SegmentLost):
        loc_stale = dict(loc1, name=loc2["name"])
        _store.map_segment(loc_stale)


def test_a_mapped_segment_is_never_recycled(cluster_id: str) -> None:
    a = np.arange(200_000, dtype=np.float64)
    header, bufs = s.dumps(a)
    loc = _store.write_segment(f"iris-{cluster_id}-20", header, bufs)
    h, views = _store.map_segment(loc)
    view = pickle.loads(h, buffers=views)
    del h, views
    _store.release_segment(loc["name"])  # mapped: must be unlinked, not pooled
    header, bufs = s.dumps(np.zeros(200_000))
    _store.write_segment(f"iris-{cluster_id}-21", header, bufs)
    np.testing.assert_array_equal(view, a)  # the reader's data did not change


def test_missing_segment_is_lost(cluster_id: str) -> None:
    with pytest.raises(_store.SegmentLost):
        _store.map_segment({"name": f"iris-{cluster_id}-404", "size": 1, "hdr": 0, "bufs": []})


def test_release_waits_for_this_process_to_unmap(cluster_id: str) -> None:
    import gc

    _store.clear_pool()
    header, bufs = s.dumps(np.ones(200_000))
    loc = _store.write_segment(f"iris-{cluster_id}-30", header, bufs)
    path = os.path.join(_store.SHM_DIR, loc["name"])
    h, views = _store.map_segment(loc)
    view = pickle.loads(h, buffers=views)
    del h, views
    _store.release_segment(loc["name"])  # our own view still maps it: deferred
    assert os.path.exists(path)
    assert view.sum() == 200_000.0
    del view
    gc.collect()
    assert not os.path.exists(path)
    assert _store.pool_statistics()["segments"] == 1  # pooled once unmapped
    _store.clear_pool()
    assert _store.pool_statistics()["segments"] == 0


def test_a_pooled_segment_removed_under_the_pool_is_skipped(cluster_id: str) -> None:
    # A cluster's clean-up may unlink segments this process pooled for it; the next write
    # of that size must make a fresh segment, not fail on the vanished pooled file.
    header, bufs = s.dumps(np.ones(50_000))
    loc = _store.write_segment(f"iris-{cluster_id}-pooled", header, bufs)
    before = _store.pool_statistics()["segments"]
    _store.release_segment(loc["name"])
    assert _store.pool_statistics()["segments"] == before + 1
    _store.remove_cluster_segments(cluster_id)
    other = "t" + secrets.token_hex(4)
    try:
        loc2 = _store.write_segment(f"iris-{other}-1", header, bufs)
        h, views = _store.map_segment(loc2)
        assert pickle.loads(h, buffers=views).sum() == 50_000.0
        del h, views
    finally:
        _store.remove_cluster_segments(other)


def test_a_segment_recycled_many_times_is_written_in_place_and_stays_readable(
        cluster_id: str) -> None:
    import threading

    _store.clear_pool()
    size = (_store._PARALLEL_COPY + 4096) // 8  # large enough for the two-thread copy
    for i in range(4):  # the third write onwards goes through the cached writable mapping
        a = np.full(size, float(i))
        header, bufs = s.dumps(a)
        loc = _store.write_segment(f"iris-{cluster_id}-w{i}", header, bufs)
        got: list[np.ndarray] = []
        # A reader takes the segment's shared lock: the writer must not hold it any more.
        t = threading.Thread(target=lambda: got.append(pickle.loads(
            *_store.map_segment(loc)[:1], buffers=_store.map_segment(loc)[1])))
        t.start()
        t.join(30)
        assert not t.is_alive(), "a reader blocked on the recycled segment's lock"
        assert got[0][0] == float(i) and got[0][-1] == float(i)
        del got, t
        import gc

        gc.collect()  # its views go: the segment can be pooled again
        _store.release_segment(loc["name"])
    assert _store.pool_statistics()["reused"] >= 3
    _store.clear_pool()
    assert not _store._write_maps  # the mappings went with the pooled files
