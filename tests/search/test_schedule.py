"""The search schedule: weight warm-up epochs, then IF cycles (section 3.4, 4.1)."""

import pytest

from ifnas.nn.supernet import Activation
from ifnas.search.schedule import SearchSchedule


def expected_activation(it, L, per_epoch, warm, delay, step):
    """The schedule written out as the paper describes it, step by step."""
    if it < warm * per_epoch:
        return Activation()
    since = it - warm * per_epoch
    alpha = since >= delay * per_epoch
    position = since % ((L + 1) * step)
    if position < step:
        return Activation()  # the warm-up step of the cycle: every edge, weights only
    return Activation(group=position // step - 1, learn_beta=True, learn_alpha=alpha)


@pytest.mark.parametrize(
    "L,per_epoch,warm,delay,step",
    [(4, 22, 2, 1, 10), (1, 7, 0, 0, 3), (8, 5, 3, 2, 1), (3, 100, 1, 3, 100)],
)
def test_activation_sequence(L, per_epoch, warm, delay, step):
    schedule = SearchSchedule(L, per_epoch, warm, delay, step)
    for it in range(0, (warm + delay + 6) * per_epoch + 3 * (L + 1) * step):
        assert schedule.activation(it) == expected_activation(it, L, per_epoch, warm, delay, step)


def test_each_cycle_visits_every_group_once_in_order():
    schedule = SearchSchedule(
        L=4, iters_per_epoch=10, weight_warmup_epochs=1, alpha_delay_epochs=0, step_iters=3
    )
    start = schedule.arch_start
    groups = [schedule.activation(start + k * 3).group for k in range(10)]
    assert groups == [None, 0, 1, 2, 3, None, 0, 1, 2, 3]


def test_without_if_every_gate_learns_on_every_edge():
    schedule = SearchSchedule(4, 10, 1, 1, 5, interleaving_free=False)
    assert schedule.activation(5) == Activation()
    assert schedule.activation(10) == Activation(None, learn_beta=True, learn_alpha=False)
    assert schedule.activation(25) == Activation(None, learn_beta=True, learn_alpha=True)


@pytest.mark.parametrize(
    "kwargs", [dict(iters_per_epoch=0), dict(step_iters=0), dict(weight_warmup_epochs=-1)]
)
def test_bad_schedules_are_errors(kwargs):
    args = dict(L=4, iters_per_epoch=10, weight_warmup_epochs=1, alpha_delay_epochs=1, step_iters=5)
    with pytest.raises(ValueError):
        SearchSchedule(**{**args, **kwargs})
