from __future__ import annotations

import numpy as np
import pytest

from gatrec.features.fuse import fill_missing, fuse, l2_normalize, pca


@pytest.mark.parametrize("shape", [(300, 40), (12, 40)])  # tall (scatter-matrix path) and wide (SVD path)
def test_pca_matches_an_independent_svd(shape: tuple[int, int]) -> None:
    x = np.random.default_rng(0).normal(size=shape) @ np.diag(np.linspace(3, 0.1, shape[1]))
    scores, ratio = pca(x, 8)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    ref = xc @ vt[:8].T
    np.testing.assert_allclose(np.abs(scores), np.abs(ref), rtol=1e-4, atol=1e-4)  # equal up to axis sign
    np.testing.assert_allclose(ratio, (s**2 / (s**2).sum())[:8], rtol=1e-4)
    assert (np.diff(ratio) <= 1e-7).all()


def test_fuse_shape_dtype_and_determinism() -> None:
    rng = np.random.default_rng(1)
    text, image = rng.normal(size=(200, 384)), rng.normal(size=(200, 512))
    a, explained = fuse([text, image], 128)
    b, _ = fuse([text.copy(), image.copy()], 128)
    assert a.shape == (200, 128) and a.dtype == np.float32 and 0 < explained <= 1
    np.testing.assert_array_equal(a, b)
    small, _ = fuse([text[:10]], 128)
    assert small.shape == (10, 10)  # never more axes than items
    with pytest.raises(ValueError):
        fuse([])


def test_fill_missing_uses_the_normalised_mean_of_present_rows() -> None:
    x = l2_normalize(np.array([[1, 0], [0, 1], [5, 5]], dtype=np.float32))
    out = fill_missing(x, np.array([True, True, False]))
    np.testing.assert_allclose(out[2], [np.sqrt(0.5), np.sqrt(0.5)], atol=1e-6)
    np.testing.assert_array_equal(out[:2], x[:2])
