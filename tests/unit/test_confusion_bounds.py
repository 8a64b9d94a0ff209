"""Issue 25 item 2: the confusion of a 60,000-class scoring is counted in memory that grows with rows and
classes (a dense matrix would be 3.6·10⁹ cells, 29 GB), and its lists match a dense count on a small case."""

from __future__ import annotations

import tracemalloc

import numpy as np

from app.scoring.confusion import count_confusion, dense_matrix, listed_classes, top_confusions


def test_sixty_thousand_classes_are_counted_in_a_few_megabytes() -> None:
    rng = np.random.default_rng(0)
    labels, predicted = rng.integers(0, 60_000, 20_000), rng.integers(0, 60_000, 20_000)
    tracemalloc.start()
    confusion = count_confusion(labels, predicted, 60_000)
    top = top_confusions(confusion, 100)
    listed = listed_classes(confusion, 100)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 8 << 20, peak
    assert confusion.n == 20_000 and len(top) == 100 and len(listed) == 100


def test_the_counts_match_a_dense_matrix() -> None:
    rng = np.random.default_rng(1)
    labels, predicted = rng.integers(0, 7, 500), rng.integers(0, 7, 500)
    dense = np.zeros((7, 7), dtype=int)
    np.add.at(dense, (labels, predicted), 1)
    confusion = count_confusion(labels, predicted, 7)
    assert dense_matrix(confusion) == dense.tolist()
    assert confusion.accuracy == np.trace(dense) / 500
    off = sorted((-dense[a, b], a, b) for a in range(7) for b in range(7) if a != b)[:5]
    assert top_confusions(confusion, 5) == [(a, b, -n) for n, a, b in off]
    assert listed_classes(confusion, 3) == sorted(np.lexsort((np.arange(7), -dense.sum(1)))[:3].tolist())
