"""The typed report schema: real reports round-trip through JSON, every key they hold is
declared in comparator/schema.py, and docs/report-schema.md is the generated one."""

import dataclasses
import json
import os
import subprocess
import sys
import types
import typing

import pytest

from comparator.schema import Report, report_from_dict

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def refereed_tiny(tiny_classify, tmp_path_factory):
    pytest.importorskip("adapters.onnx.runtime")
    from comparator.analysis.referee import with_referee
    from comparator.pipeline import referee

    result = referee(tiny_classify, cache_dir=str(tmp_path_factory.mktemp("onnx")))
    return with_referee(tiny_classify.report, result)


@pytest.fixture(params=["tiny_classify", "tiny_head", "refereed_tiny"])
def real_report(request) -> Report:
    found = request.getfixturevalue(request.param)
    return found if isinstance(found, Report) else found.report


def test_real_reports_round_trip_through_json(real_report):
    loaded = report_from_dict(json.loads(real_report.to_json()))
    assert loaded == real_report
    assert loaded.to_dict() == real_report.to_dict()


def _undeclared(hint, value, where: str) -> list[str]:
    """Keys of `value` that its type does not declare, with their path."""
    hint = typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint
    if value is None:
        return []
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        item = typing.get_args(hint)[0]
        return [k for i, v in enumerate(value) for k in _undeclared(item, v, f"{where}[{i}]")]
    if origin is dict:
        item = typing.get_args(hint)[1]
        return [k for n, v in value.items() for k in _undeclared(item, v, f"{where}.{n}")]
    if typing.is_typeddict(hint) or dataclasses.is_dataclass(hint):
        declared = typing.get_type_hints(hint, include_extras=True)
        found = [f"{where}.{k}" for k in value if k not in declared]
        return found + [k for n, v in value.items() if n in declared
                        for k in _undeclared(declared[n], v, f"{where}.{n}")]
    return []


def test_every_key_of_a_real_report_is_declared_in_the_schema(real_report):
    missing = _undeclared(Report, real_report.to_dict(), "report")
    assert not missing, ("keys not declared in comparator/schema.py (add one line each, then "
                         f"run tools/report_schema.py): {missing}")


def test_the_undeclared_key_finder_finds_one():
    body = {"schema": "x", "settings": {"batch_size": 4, "new_key": 1},
            "runs": [{"losses": {"inference_before": 1.0, "surprise": 2}}]}
    assert _undeclared(Report, body, "report") == ["report.settings.new_key",
                                                    "report.runs[0].losses.surprise"]


def test_the_committed_schema_document_is_the_generated_one():
    generated = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "report_schema.py"),
                                "--stdout"], capture_output=True, text=True, check=True,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": ROOT}).stdout
    with open(os.path.join(ROOT, "docs", "report-schema.md"), encoding="utf-8") as handle:
        committed = handle.read()
    assert committed == generated, "docs/report-schema.md is stale: run tools/report_schema.py"


@pytest.mark.parametrize("argv, code", [(["--help"], 0), (["--stdot"], 2)])
def test_the_schema_tool_writes_nothing_for_help_or_a_mistyped_argument(argv, code, monkeypatch,
                                                                         tmp_path):
    from tools import report_schema

    target = tmp_path / "report-schema.md"
    monkeypatch.setattr(report_schema, "OUTPUT", str(target))
    assert report_schema.main(argv) == code
    assert not target.exists()
