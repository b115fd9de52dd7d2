"""Bad arguments to the Python API are refused with one UsageError sentence, before any
model work, as the command line refuses them; and the command line's own gaps."""

import numpy as np
import pytest

import comparator
from comparator.cli import compare as compare_cli
from comparator.cli import validate_port as validate_port_cli
from comparator.errors import UsageError
from tests.user_pair_models import ported_keras_net, seeded_torch_net


@pytest.fixture(scope="module")
def pair():
    x = np.random.default_rng(0).standard_normal((4, 3, 8, 8)).astype(np.float32)
    return seeded_torch_net(), ported_keras_net(), x


def _one_sentence(exc) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_compare_pair_takes_recipes_as_a_comma_separated_string(pair):
    report = comparator.compare_pair(*pair, recipes="pytorch:eval, keras:training_false",
                                     dropout="off")
    assert [run.id for run in report.runs] == ["pytorch:eval", "keras:training_false"]


@pytest.mark.parametrize("recipes", ["", [1], 3])
def test_compare_pair_refuses_recipes_that_are_not_names(pair, recipes):
    with pytest.raises(UsageError) as exc:
        comparator.compare_pair(*pair, recipes=recipes)
    assert "recipes" in _one_sentence(exc)


@pytest.mark.parametrize("options, word", [
    ({"steps": 1.5}, "steps"), ({"steps": True}, "steps"), ({"steps": "2"}, "steps"),
    ({"lr": "0.1"}, "learning rate"),
    ({"seed": -1}, "seed"), ({"seed": 2**32}, "seed"), ({"seed": 1.0}, "seed"),
])
def test_compare_pair_refuses_bad_numbers_in_one_sentence(pair, options, word):
    with pytest.raises(UsageError) as exc:
        comparator.compare_pair(*pair, **options)
    assert word in _one_sentence(exc)


@pytest.mark.parametrize("options, word", [
    ({"seed": -1}, "seed"), ({"seed": 0.5}, "seed"),
    ({"tolerance": "0.1"}, "tolerance"), ({"tolerance": 0}, "tolerance"),
    ({"tolerance": 2}, "tolerance"), ({"gradient_tolerance": -1.0}, "tolerance"),
])
def test_validate_port_refuses_bad_numbers_in_one_sentence(pair, options, word):
    with pytest.raises(UsageError) as exc:
        comparator.validate_port(*pair, **options)
    assert word in _one_sentence(exc)


def test_compare_cli_refuses_empty_recipes_in_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        compare_cli.main(["tiny_cnn", "--recipes", ""])
    assert exc.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.count("\n") == 1 and "--recipes" in captured.err


def test_validate_port_help_names_no_frameworks_option():
    assert "--frameworks" not in validate_port_cli.build_parser().format_help()
    assert "--frameworks" in compare_cli.build_parser().format_help()
