"""The sweep spec: a TOML `[sweep]` table (plus optional `[[include]]` groups) -> cells.

Axes are lists, and the cells are their product: `models`, `scenarios`, `presets`,
`frameworks` (each entry one comparison's framework list, e.g.
"pytorch,keras-torch@nightly"), `seeds`, and any other `compare.py` option under its
option name with underscores (`image_size`, `batch_size`, `lr`, `no_onnx`, ...), given as a
single value or as a list (a list is an axis; a comma-separated string is one value).
Each `[[include]]` table is one more group of cells: its keys replace those of `[sweep]`;
a `[sweep]` without `models` or `presets` then only holds the groups' shared settings.
`title` and `note` label a group in documents; `cpus_per_cell` is the threads a cell uses.

Every cell is checked with the parser and `resolve()` that `compare.py` itself uses, so an
impossible cell is a one-line error before anything runs; no framework is imported.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tomllib
from dataclasses import dataclass, field

from comparator.errors import UsageError

# Plural axis name -> the compare.py option it feeds.
AXES = {"models": "model", "presets": "preset", "scenarios": "scenario",
        "frameworks": "frameworks", "seeds": "seed"}
# Keys that describe a group or a cell's resources, not the comparison.
GROUP_KEYS = {"title", "note"}
RESOURCE_KEYS = {"cpus_per_cell"}
# compare.py options that a sweep sets itself or that make no sense per cell.
NOT_SWEEPABLE = {"help", "json", "markdown", "html", "save_artifacts", "quiet", "debug",
                 "model", "preset", "scenario", "seed"}


@dataclass(frozen=True)
class Cell:
    id: str
    settings: dict  # spec key (singular) -> value, as given in the spec
    argv: tuple[str, ...]  # compare.py arguments, without the report paths
    cpus: int = 1
    group: int = 0

    @property
    def memory_key(self) -> str:
        """Cells that differ only in their seed need the same memory; any other setting
        (model, frameworks and their workers, sizes, ...) may change it."""
        return json.dumps({k: v for k, v in self.settings.items() if k != "seed"},
                          sort_keys=True)


@dataclass(frozen=True)
class Spec:
    path: str
    cells: tuple[Cell, ...]
    groups: tuple[dict, ...] = field(default_factory=tuple)  # title/note per group


def _compare_parser():
    from comparator.cli.compare import build_parser

    parser = build_parser()

    def error(message):  # the sweep reports the cell; argparse must not exit
        raise UsageError(message)
    parser.error = error
    return parser


def _options(parser) -> dict:
    """compare.py's option dest -> its argparse action, for the keys a spec may set."""
    return {a.dest: a for a in parser._actions
            if a.option_strings and a.dest not in NOT_SWEEPABLE}


def _as_axis(key: str, value) -> list:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise UsageError(f"{key} is an empty list")
    for item in values:
        if isinstance(item, (list, dict)):
            raise UsageError(f"{key}: expected a single value or a list of them, got {item!r}")
    twice = [item for index, item in enumerate(values) if item in values[:index]]
    if twice:  # one cell would stand for both, and the sweep would count one cell fewer
        raise UsageError(f"{key} lists {twice[0]!r} twice")
    return values


def _argv_for(settings: dict, options: dict) -> list[str]:
    argv = [str(settings["model"])] if settings.get("model") else []
    if settings.get("preset"):
        argv += ["--preset", str(settings["preset"])]
    for key in ("scenario", "seed"):
        if key in settings:
            argv += [f"--{key}", str(settings[key])]
    for key, value in settings.items():
        action = options.get(key)
        if action is None:
            continue
        flag = action.option_strings[-1]
        if action.nargs == 0:  # store_true flags
            if not isinstance(value, bool):
                raise UsageError(f"{key} is a flag: give true or false, not {value!r}")
            argv += [flag] if value else []
        elif action.nargs == "+":
            argv += [flag, *str(value).split()]
        else:
            argv += [flag, str(value)]
    return argv


def _check_keys(table: dict, options: dict, where: str) -> None:
    singular = {v: k for k, v in AXES.items()}
    for key in table:
        if key in AXES or key in options or key in GROUP_KEYS | RESOURCE_KEYS:
            continue
        if key in singular:
            raise UsageError(f"{where}: unknown key {key!r}; the axis is {singular[key]!r} "
                             f"(a list)")
        known = sorted({*AXES, *options, *GROUP_KEYS, *RESOURCE_KEYS})
        raise UsageError(f"{where}: unknown key {key!r}; known: {', '.join(known)}")


def _group_cells(table: dict, options: dict, group: int, where: str) -> list[Cell]:
    _check_keys(table, options, where)
    if not table.get("models") and not table.get("presets"):
        if "models" in table or "presets" in table:
            raise UsageError(f"{where}: models is an empty list")
        raise UsageError(f"{where}: give models (or presets)")
    cpus = table.get("cpus_per_cell", 1)
    if not isinstance(cpus, int) or isinstance(cpus, bool) or cpus <= 0:
        raise UsageError(f"{where}: cpus_per_cell must be a positive integer, got {cpus!r}")
    axes = {AXES.get(k, k): _as_axis(k, v) for k, v in table.items()
            if k not in GROUP_KEYS | RESOURCE_KEYS}
    cells = []
    for values in itertools.product(*axes.values()):
        settings = dict(zip(axes, values))
        argv = tuple(_argv_for(settings, options))
        digest = hashlib.sha256(json.dumps([argv, cpus]).encode()).hexdigest()[:10]
        name = settings.get("model") or settings.get("preset")
        cells.append(Cell(id=f"{name}-{digest}", settings=settings, argv=argv, cpus=cpus,
                          group=group))
    return cells


def validate_cell(cell: Cell, parser) -> None:
    """The checks compare.py makes before it loads anything, as one-line errors."""
    from comparator.cli.compare import _config
    from comparator.config import resolve

    try:
        resolve(_config(parser.parse_args(list(cell.argv))))
    except UsageError as exc:
        label = ", ".join(f"{k}={v}" for k, v in cell.settings.items())
        raise UsageError(f"cell {label}: {exc}") from None


def parse_spec(text: str, path: str = "<spec>") -> Spec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(data) - {"sweep", "include"}
    if unknown:
        raise UsageError(f"{path}: unknown table {sorted(unknown)[0]!r}; expected [sweep] and "
                         "optionally [[include]]")
    base = data.get("sweep")
    if not isinstance(base, dict):
        raise UsageError(f"{path}: no [sweep] table")
    includes = data.get("include", [])
    if not isinstance(includes, list) or not all(isinstance(i, dict) for i in includes):
        raise UsageError(f"{path}: include must be an array of tables ([[include]])")
    parser = _compare_parser()
    options = _options(parser)
    shared = {k: v for k, v in base.items() if k not in GROUP_KEYS}
    groups = [(f"{path} [[include]] #{n}", {**shared, **extra})
              for n, extra in enumerate(includes, 1)]
    if not includes or "models" in base or "presets" in base:
        groups.insert(0, (f"{path} [sweep]", base))
    cells: dict[str, Cell] = {}
    for number, (where, table) in enumerate(groups):
        for cell in _group_cells(table, options, number, where):
            cells.setdefault(cell.id, cell)
    for cell in cells.values():
        validate_cell(cell, parser)
    described = tuple({k: table.get(k) for k in GROUP_KEYS} for _, table in groups)
    return Spec(path=path, cells=tuple(cells.values()), groups=described)


def load_spec(path: str) -> Spec:
    try:
        with open(path, "rb") as handle:
            text = handle.read().decode()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read spec {path}: {exc}") from None
    return parse_spec(text, path)
