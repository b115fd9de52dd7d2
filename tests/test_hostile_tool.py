"""tools/hostile.py judges a case as the README promises: a refusal that keeps the promise
holds, a wrong expectation is reported with its reason, and bad input to the tool itself
is one line and exit 2. Cheap cases only (each a refused argument, well under a second)."""

import os

from tools.hostile import changed_paths, main, run_case, snapshot, table
from tools.hostile_case import TINY_NO_ONNX, Case

SEED = (*TINY_NO_ONNX, "--seed", "-1", "--json", "r.json")


def test_a_refused_seed_holds(tmp_path):
    outcome = run_case(Case("numbers", "seed", "compare.py", SEED), tmp_path / "case", tmp_path)
    assert outcome.held, outcome.reasons
    assert outcome.code == 2 and "--seed must be an integer" in outcome.first_stderr_line()


def test_a_wrong_expectation_is_reported_as_not_held(tmp_path):
    wrong = Case("numbers", "seed-expected-to-run", "compare.py", SEED, expect_code=0,
                 one_line=False, expect_files=("r.json",))
    outcome = run_case(wrong, tmp_path / "case", tmp_path)
    assert not outcome.held
    assert outcome.reasons == ["exit 2, expected 0", "r.json was not written"]
    shown = table([outcome])
    assert "not held:" in shown and "numbers/seed-expected-to-run" in shown


def test_a_fifo_is_snapshotted_without_being_opened(tmp_path):
    before = snapshot(tmp_path)
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "new.json").write_text("{}")
    assert changed_paths(before, snapshot(tmp_path)) == ["+new.json", "+pipe"]


def test_bad_input_to_the_tool_is_one_line_and_exit_2(capsys):
    assert main(["--only", "no-such-class"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hostile.py: error: --only: unknown class")
