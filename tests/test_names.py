import doctest

from kamml import names as names_module
from kamml.allocation import optimizer
from kamml.names import rep_name, rep_names


def test_doctests():
    result = doctest.testmod(names_module)
    assert result.attempted >= 2
    assert result.failed == 0


def test_the_optimizer_and_the_config_name_reps_alike():
    """Moved here from the optimizer so that the config needs no import of kamml.allocation."""
    from kamml.config import AllocationConfig

    assert optimizer.rep_name is rep_name
    assert list(AllocationConfig(capacity={101.0: 5.0, " ann ": 3.0}).capacity) == ["101", "ann"]
    assert rep_names(["101.0", 7, None]).tolist() == ["101", "7", None]
