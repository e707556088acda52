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
