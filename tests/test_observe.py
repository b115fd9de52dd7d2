import numpy as np

from comparator.analysis.observe import used_batch_statistics


def _bn_pass(x, gamma, beta, mean, var, eps=1e-5):
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def _stats(x, y):
    return x.mean(0), x.var(0), y.mean(0), y.var(0)


def test_batch_and_moving_statistics_are_told_apart_from_the_numbers_alone():
    rng = np.random.default_rng(0)
    x = rng.normal(0.3, 2.0, size=(64, 5))
    gamma, beta = rng.uniform(0.5, 1.5, 5), rng.normal(0, 0.1, 5)
    moving_mean, moving_var = np.zeros(5), np.ones(5)
    with_batch = _bn_pass(x, gamma, beta, x.mean(0), x.var(0))
    with_moving = _bn_pass(x, gamma, beta, moving_mean, moving_var)
    assert used_batch_statistics(*_stats(x, with_batch), gamma, beta, moving_mean, moving_var,
                                 eps=1e-5)
    assert not used_batch_statistics(*_stats(x, with_moving), gamma, beta, moving_mean,
                                     moving_var, eps=1e-5)
