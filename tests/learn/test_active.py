"""warden.learn.active: batch selection for labeling (synthetic arrays only, no encoder)."""

from __future__ import annotations

import numpy as np
import pytest

from warden.learn.active import (
    STRATEGIES,
    LearningCandidate,
    Selection,
    pick_for_learning,
    select_batch,
    uncertainty_scores,
)


def _pool(n: int = 300, k: int = 3, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.uniform(size=(n, k)), rng.normal(size=(n, d))


def _blobs(*, centers: int, per: int, d: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Well separated clusters; blob 0 holds the most uncertain items, so pure uncertainty
    sampling would take them all from blob 0."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, d)) * 20
    emb = np.concatenate([c[i] + rng.normal(size=(per, d)) for i in range(centers)])
    blob = np.repeat(np.arange(centers), per)
    # blob 0: p in [0.45, 0.55] (near the threshold); others: p in [0.2, 0.3] (less uncertain)
    p = np.where(blob == 0, rng.uniform(0.45, 0.55, size=len(blob)), rng.uniform(0.2, 0.3, size=len(blob)))
    return p.reshape(-1, 1), emb, blob


# -- uncertainty -------------------------------------------------------------------------

def test_uncertainty_orders_by_closeness_to_threshold() -> None:
    u = uncertainty_scores(np.array([[0.5], [0.6], [0.8], [0.99], [0.0], [1.0]]))
    assert u[0] == pytest.approx(1.0)
    assert u[0] > u[1] > u[2] > u[3] > 0
    assert u[4] == pytest.approx(0.0, abs=1e-9) and u[5] == pytest.approx(0.0, abs=1e-9)
    # symmetric in log-odds around 0.5: margin / entropy order
    assert uncertainty_scores(np.array([[0.3]]))[0] == pytest.approx(uncertainty_scores(np.array([[0.7]]))[0])


def test_uncertainty_is_max_over_categories_and_uses_thresholds() -> None:
    p = np.array([[0.01, 0.5], [0.3, 0.3]])
    u = uncertainty_scores(p)
    assert u[0] == pytest.approx(1.0)  # one undecided category is enough
    # at threshold 0.8, a score of 0.8 is on the boundary and 0.5 is not
    u_t = uncertainty_scores(np.array([[0.8], [0.5]]), thresholds=0.8)
    assert u_t[0] == pytest.approx(1.0) and u_t[1] < 1.0
    u_k = uncertainty_scores(np.array([[0.8, 0.1]]), thresholds=[0.8, 0.5])
    assert u_k[0] == pytest.approx(1.0)


# -- determinism and basics --------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_selection_is_deterministic_for_a_seed(strategy: str) -> None:
    p, emb = _pool()
    a = select_batch(probabilities=p, embeddings=emb, n=20, strategy=strategy, seed=7)
    b = select_batch(probabilities=p, embeddings=emb, n=20, strategy=strategy, seed=7)
    assert isinstance(a, Selection) and a.strategy == strategy
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.uncertainty, b.uncertainty)
    assert len(a) == 20 and len(set(a.indices.tolist())) == 20
    np.testing.assert_allclose(a.uncertainty, uncertainty_scores(p)[a.indices])
    with pytest.raises(ValueError):
        a.indices[0] = 1  # read-only result


def test_random_depends_on_seed() -> None:
    p, _emb = _pool()
    a = select_batch(probabilities=p, n=20, strategy="random", seed=1)
    b = select_batch(probabilities=p, n=20, strategy="random", seed=2)
    assert set(a.indices.tolist()) != set(b.indices.tolist())


def test_uncertainty_picks_the_most_uncertain_first() -> None:
    p, _ = _pool()
    sel = select_batch(probabilities=p, n=10, strategy="uncertainty", seed=0)
    u = uncertainty_scores(p)
    assert set(sel.indices.tolist()) == set(np.argsort(-u)[:10].tolist())
    assert np.all(np.diff(sel.uncertainty) <= 0)


def test_ties_are_broken_by_seed_not_by_index() -> None:
    p = np.full((1000, 1), 0.5)  # a cold-start model: every item equally uncertain
    picks = select_batch(probabilities=p, n=10, strategy="uncertainty", seed=3).indices
    assert picks.max() > 100  # not simply rows 0..9


# -- diversity ---------------------------------------------------------------------------

def test_diversity_spreads_picks_across_clusters() -> None:
    p, emb, blob = _blobs(centers=5, per=60)
    unc = select_batch(probabilities=p, embeddings=emb, n=5, strategy="uncertainty", seed=0)
    div = select_batch(probabilities=p, embeddings=emb, n=5, strategy="uncertainty_diversity", seed=0,
                       candidate_factor=60)
    assert set(blob[unc.indices].tolist()) == {0}  # uncertainty alone piles into one blob
    assert set(blob[div.indices].tolist()) == {0, 1, 2, 3, 4}  # one per blob
    assert div.clusters is not None and len(set(div.clusters.tolist())) == 5
    # within each cluster the most uncertain member is picked: blob 0's pick is the global top
    assert div.indices[0] == unc.indices[0]


def test_diversity_stays_within_the_uncertain_shortlist() -> None:
    p, emb, _blob = _blobs(centers=5, per=60)
    div = select_batch(probabilities=p, embeddings=emb, n=5, strategy="uncertainty_diversity", seed=0,
                       candidate_factor=2)
    u = uncertainty_scores(p)
    shortlist = set(np.argsort(-u)[:10].tolist())
    assert set(div.indices.tolist()) <= shortlist


def test_diversity_with_duplicate_embeddings_still_returns_n() -> None:
    p = np.linspace(0.3, 0.5, 50).reshape(-1, 1)
    emb = np.zeros((50, 4))
    emb[25:] = 1.0  # only two distinct points for 10 clusters
    sel = select_batch(probabilities=p, embeddings=emb, n=10, strategy="uncertainty_diversity", seed=0)
    assert len(sel) == 10 and len(set(sel.indices.tolist())) == 10


def test_diversity_needs_embeddings() -> None:
    p, _ = _pool()
    with pytest.raises(ValueError, match="needs embeddings"):
        select_batch(probabilities=p, n=5, strategy="uncertainty_diversity", seed=0)
    with pytest.raises(ValueError, match="shape"):
        select_batch(probabilities=p, embeddings=np.zeros((3, 4)), n=5, strategy="uncertainty_diversity", seed=0)


# -- exclusion and edge cases ------------------------------------------------------------

@pytest.mark.parametrize("strategy", STRATEGIES)
def test_excluded_items_are_never_picked(strategy: str) -> None:
    p, emb = _pool(n=100)
    u = uncertainty_scores(p)
    labeled = np.argsort(-u)[:30]  # exclude the 30 most uncertain: the obvious picks
    sel = select_batch(probabilities=p, embeddings=emb, n=20, strategy=strategy, seed=0, exclude=labeled)
    assert not set(sel.indices.tolist()) & set(labeled.tolist())
    mask = np.zeros(100, dtype=bool)
    mask[labeled] = True
    sel_mask = select_batch(probabilities=p, embeddings=emb, n=20, strategy=strategy, seed=0, exclude=mask)
    np.testing.assert_array_equal(sel.indices, sel_mask.indices)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_n_larger_than_pool_returns_every_available_item(strategy: str) -> None:
    p, emb = _pool(n=12)
    sel = select_batch(probabilities=p, embeddings=emb, n=50, strategy=strategy, seed=0, exclude=[0, 1])
    assert sorted(sel.indices.tolist()) == list(range(2, 12))
    assert len(select_batch(probabilities=p, embeddings=emb, n=5, strategy=strategy, seed=0,
                            exclude=range(12))) == 0
    assert len(select_batch(probabilities=p, embeddings=emb, n=0, strategy=strategy, seed=0)) == 0


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_single_category_and_single_pick(strategy: str) -> None:
    p, emb = _pool(n=40, k=1)
    sel = select_batch(probabilities=p, embeddings=emb, n=1, strategy=strategy, seed=0)
    assert len(sel) == 1
    if strategy != "random":
        assert sel.indices[0] == int(np.argmax(uncertainty_scores(p)))


def test_empty_pool() -> None:
    sel = select_batch(probabilities=np.zeros((0, 2)), embeddings=np.zeros((0, 4)), n=5,
                       strategy="uncertainty_diversity", seed=0)
    assert len(sel) == 0


def test_invalid_inputs_are_rejected_clearly() -> None:
    p, emb = _pool(n=10)
    bad = p.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        select_batch(probabilities=bad, n=2, strategy="uncertainty", seed=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        select_batch(probabilities=p * 2, n=2, strategy="uncertainty", seed=0)
    with pytest.raises(ValueError, match="2-D"):
        select_batch(probabilities=p[:, 0], n=2, strategy="uncertainty", seed=0)
    with pytest.raises(ValueError, match="strategy"):
        select_batch(probabilities=p, n=2, strategy="entropy", seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="non-negative"):
        select_batch(probabilities=p, n=-1, strategy="random", seed=0)
    with pytest.raises(ValueError, match="outside"):
        select_batch(probabilities=p, n=2, strategy="random", seed=0, exclude=[10])
    with pytest.raises(ValueError, match="thresholds"):
        uncertainty_scores(p, thresholds=[0.5, 0.5])
    with pytest.raises(ValueError, match="thresholds"):
        uncertainty_scores(p, thresholds=1.0)
    emb_bad = emb.copy()
    emb_bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="embeddings"):
        select_batch(probabilities=p, embeddings=emb_bad, n=2, strategy="uncertainty_diversity", seed=0)


# -- learning lane -----------------------------------------------------------------------

class _Embed:
    """A stub encoder: a fixed vector per text, and a record of what it was asked to embed."""

    def __init__(self, vectors: dict[str, np.ndarray]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.stack([self.vectors[t] for t in texts])


def test_pick_for_learning_shortlists_embeds_and_explains() -> None:
    rng = np.random.default_rng(0)
    cands, vectors = [], {}
    for i in range(200):
        text = f"item {i}"
        vectors[text] = rng.normal(size=8) + (i % 4) * 10
        scores = {"hate": float(rng.uniform(0, 0.2)), "spam": float(rng.uniform(0, 1))}
        if i == 7:
            scores = {"hate": 0.8}  # exactly on hate's threshold; spam unscored
        cands.append(LearningCandidate(key=f"c{i}", text=text, scores=scores))
    cands.append(LearningCandidate(key="unscored", text="x", scores={}))
    embed = _Embed(vectors)
    picks = pick_for_learning(cands, limit=5, embed=embed, thresholds={"hate": 0.8, "spam": 0.5}, candidate_factor=4)
    assert len(picks) == 5 and len({p.key for p in picks}) == 5
    assert picks[0].key == "c7" and picks[0].category == "hate" and picks[0].score == pytest.approx(0.8)
    assert picks[0].uncertainty == pytest.approx(1.0)
    assert all(p.key != "unscored" for p in picks)
    assert [p.uncertainty for p in picks] == sorted((p.uncertainty for p in picks), reverse=True)
    assert len(embed.calls) == 1 and len(embed.calls[0]) == 20  # only the shortlist is embedded
    again = pick_for_learning(cands, limit=5, embed=_Embed(vectors), thresholds={"hate": 0.8, "spam": 0.5},
                              candidate_factor=4)
    assert again == picks


def test_pick_for_learning_small_inputs_do_not_embed() -> None:
    embed = _Embed({})
    cands = [LearningCandidate(key="a", text="a", scores={"hate": 0.5}),
             LearningCandidate(key="b", text="b", scores={"hate": 0.99})]
    picks = pick_for_learning(cands, limit=5, embed=embed, thresholds={"hate": 0.5})
    assert [p.key for p in picks] == ["a", "b"] and embed.calls == []
    assert pick_for_learning(cands, limit=5, embed=embed, thresholds={"hate": 0.5}, min_uncertainty=0.5)[0].key == "a"
    assert pick_for_learning([], limit=5, embed=embed, thresholds={"hate": 0.5}) == []
    assert pick_for_learning(cands, limit=0, embed=embed, thresholds={"hate": 0.5}) == []


def test_pick_for_learning_uses_each_candidates_own_thresholds() -> None:
    cands = [LearningCandidate(key="default", text="a", scores={"hate": 0.6}),
             LearningCandidate(key="strict-surface", text="b", scores={"hate": 0.3}, thresholds={"hate": 0.3})]
    picks = pick_for_learning(cands, limit=2, embed=_Embed({}), thresholds={"hate": 0.5}, strategy="uncertainty")
    assert [p.key for p in picks] == ["strict-surface", "default"]
    assert picks[0].uncertainty == pytest.approx(1.0) and picks[0].score == pytest.approx(0.3)
