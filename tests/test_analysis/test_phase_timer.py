"""time_phases splits a step's time by the methods it calls (a scripted clock, no timing)."""
import pytest

from mmdet_hpu.analysis.method_patch import wrapped_methods
from mmdet_hpu.analysis.phase_timer import OTHER, STEP, time_phases


class _Clock:
    """Seconds that advance only when told."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def spend(self, ms):
        self.now += ms / 1e3


class _Head:
    def __init__(self, clock):
        self.clock = clock

    def targets(self):
        self.clock.spend(5)
        return 'targets'

    def losses(self):
        self.clock.spend(2)


def test_each_method_gets_all_its_calls_of_a_step_and_the_rest_is_other():
    clock = _Clock()
    head = _Head(clock)
    seen = []

    def step():
        assert head.targets() == 'targets'  # the wrapper returns what the method returns
        head.losses()
        head.losses()
        clock.spend(3)  # backward

    times = time_phases(head, ['targets', 'losses'], step, steps=2,
                        before=lambda: (seen.append('stock'), clock.spend(100)), clock=clock)
    assert seen == ['stock', 'stock']
    expected = {'targets': 5.0, 'losses': 4.0, OTHER: 3.0, STEP: 12.0}
    assert list(times) == list(expected)
    for name, ms in expected.items():
        assert times[name] == pytest.approx([ms, ms]), name
    assert 'targets' not in vars(head) and 'losses' not in vars(head)  # the class's again


def test_a_timed_method_calling_another_is_refused():
    clock = _Clock()
    head = _Head(clock)
    head_targets = head.targets

    class Nested(_Head):
        def targets(self):
            self.losses()
            return head_targets()

    nested = Nested(clock)
    with pytest.raises(ValueError, match='losses was called inside targets'):
        time_phases(nested, ['targets', 'losses'], lambda: nested.targets(), steps=1,
                    clock=clock)
    assert 'targets' not in vars(nested)


def test_wrapped_methods_put_back_what_the_instance_held_even_on_error():
    class Thing:
        def run(self):
            return 'class'

    thing = Thing()
    thing.run = lambda: 'instance'
    with pytest.raises(RuntimeError):
        with wrapped_methods([(thing, 'run', lambda: 'wrapped')]):
            assert thing.run() == 'wrapped'
            raise RuntimeError
    assert thing.run() == 'instance'
    del thing.run
    with wrapped_methods([(thing, 'run', lambda: 'wrapped')]):
        assert thing.run() == 'wrapped'
    assert 'run' not in vars(thing) and thing.run() == 'class'
