"""Documentation checks: the docs only mention commands, scripts, links and configs that exist.

- every ``keras-pose <subcommand>`` in README.md or docs/**/*.md (code blocks and
  inline code) exists, answers ``--help`` with exit code 0, and every ``--option``
  written after it is one of that subcommand's options;
- every ``python tools/<x>.py`` mentioned exists;
- every relative Markdown link (and its ``#anchor``) resolves, except the files
  ``keras-pose zoo-card`` generates, while their preset does not exist yet;
- every training config shown as a JSON block is a valid ``TrainConfig`` whose
  phase regexes select variables of its model;
- every public function and class of the package has a docstring;
- no two modules of the package import each other, and the library never imports
  the predictors (``keras_pose.inference``) or their users (``keras_pose.viz``, the
  command line; docs/architecture.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PRESETS = ("keras_pose", "zoo", "presets")  # the shipped presets' folder, relative to ROOT
DOC_FILES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])

FENCE = re.compile(r"^[ \t]*(`{3,}|~{3,})([^\n]*)\n(.*?)^[ \t]*\1[ \t]*$", re.M | re.S)
INLINE = re.compile(r"(`+)(.+?)\1", re.S)
COMMAND = re.compile(r"(?<![\w-])keras-pose[ \t]+([a-z][\w-]*)")
OPTION = re.compile(r"(?<![\w-])--[a-zA-Z][\w-]*")
TOOL = re.compile(r"\bpython3?[ \t]+(tools/[\w./-]+\.py)")
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(info string, body) of every fenced code block."""
    return [(m.group(2).strip(), m.group(3)) for m in FENCE.finditer(text)]


def _without_fences(text: str) -> str:
    return FENCE.sub("\n", text)


def _inline_code(text: str) -> list[str]:
    """Inline code spans outside fenced blocks (a span may wrap a line, not a paragraph)."""
    return [m.group(2) for m in INLINE.finditer(_without_fences(text)) if "\n\n" not in m.group(2)]


def _code_snippets(path: Path) -> list[str]:
    """Every piece of code in a Markdown file: fenced blocks (shell continuations joined) and inline spans."""
    text = path.read_text()
    snippets = [re.sub(r"\\\n", " ", body) for _, body in _fenced_blocks(text)]
    snippets += [span.replace("\n", " ") for span in _inline_code(text)]
    return snippets


def _command_uses() -> list[tuple[str, str, list[str]]]:
    """(file, subcommand, options written after it) for every `keras-pose <sub>` in code."""
    uses = []
    for path in DOC_FILES:
        for snippet in _code_snippets(path):
            for line in snippet.splitlines():
                for m in COMMAND.finditer(line):
                    rest = line[m.end():]
                    rest = re.split(r"&&|\|\||[|;#]|(?<![\w-])keras-pose\b", rest)[0]
                    uses.append((_rel(path), m.group(1), OPTION.findall(rest)))
    return uses


COMMAND_USES = _command_uses()
SUBCOMMANDS = sorted({sub for _, sub, _ in COMMAND_USES})


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    from keras_pose.cli import build_parser

    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_docs_mention_the_main_commands():
    # guards the extraction itself: a broken regex would make the checks below vacuous
    assert {"info", "train", "evaluate", "predict", "export", "zoo-card"} <= set(SUBCOMMANDS), SUBCOMMANDS


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_documented_subcommand_answers_help(sub, capsys):
    from keras_pose.cli import main

    where = sorted({f for f, s, _ in COMMAND_USES if s == sub})
    with pytest.raises(SystemExit) as exc:
        main([sub, "--help"])
    assert exc.value.code == 0, f"`keras-pose {sub} --help` exited with {exc.value.code} (mentioned in {where})"
    assert f"keras-pose {sub}" in capsys.readouterr().out


def test_documented_options_exist():
    parsers = _subparsers()
    wrong = []
    for path, sub, options in COMMAND_USES:
        if sub not in parsers:
            continue  # reported by test_documented_subcommand_answers_help
        known = set(parsers[sub]._option_string_actions)
        wrong += [f"{path}: keras-pose {sub} {o}" for o in options if o not in known]
    assert not wrong, "options that the subcommand does not have:\n" + "\n".join(sorted(set(wrong)))


def test_documented_tools_exist():
    mentioned = {(_rel(p), t) for p in DOC_FILES for t in TOOL.findall(p.read_text())}
    assert mentioned, "no `python tools/...` mention found; is the pattern broken?"
    missing = sorted(f"{doc}: {tool}" for doc, tool in mentioned if not (ROOT / tool).is_file())
    assert not missing, "scripts that do not exist:\n" + "\n".join(missing)


# ---------------------------------------------------------------- links


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # link text only
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    out, seen = set(), {}
    for m in HEADING.finditer(_without_fences(path.read_text())):
        slug = _slug(m.group(2))
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        out.add(slug if n == 0 else f"{slug}-{n}")
    return out


def _preset_exists(name: str) -> bool:
    return ROOT.joinpath(*PRESETS, name, "preset.json").is_file()


def _generated_by_zoo_card(target: Path) -> str | None:
    """If ``keras-pose zoo-card`` writes ``target`` and may not have run yet, why; else None.

    ``docs/zoo.md`` is written once the zoo has presets, ``keras_pose/zoo/presets/<name>/README.md``
    and ``learning_curve.png`` once preset ``<name>`` exists (``keras-pose zoo-add``).
    Once the preset exists, the generated file must exist too.
    """
    try:
        rel = target.relative_to(ROOT).parts
    except ValueError:
        return None
    if rel == ("docs", "zoo.md"):
        if not any(ROOT.joinpath(*PRESETS).glob("*/preset.json")):
            return "the zoo has no preset yet"
        return None
    n = len(PRESETS)
    if len(rel) == n + 2 and rel[:n] == PRESETS and rel[-1] in ("README.md", "learning_curve.png"):
        if not _preset_exists(rel[-2]):
            return f"zoo preset {rel[-2]!r} does not exist yet"
    return None


def _links(path: Path) -> list[str]:
    text = _without_fences(path.read_text())
    text = INLINE.sub(lambda m: " " * len(m.group(0)), text)  # a link inside inline code is not a link
    return LINK.findall(text)


def test_relative_links_resolve():
    broken = []
    for path in DOC_FILES:
        for link in _links(path):
            if re.match(r"[a-zA-Z][\w+.-]*:", link) or link.startswith("//"):
                continue  # http(s), mailto, ...
            target_str, _, fragment = link.partition("#")
            target = (path.parent / target_str).resolve() if target_str else path
            where = f"{_rel(path)}: ({link})"
            if not target.exists():
                if not _generated_by_zoo_card(target):  # zoo-card output for a preset not added yet may be missing
                    generated = "zoo" in target.parts or target.name == "zoo.md"
                    hint = "; run `keras-pose zoo-card`" if generated else ""
                    broken.append(f"{where}: {target} does not exist{hint}")
                continue
            if fragment and target.suffix == ".md" and fragment not in _anchors(target):
                broken.append(f"{where}: no heading with anchor #{fragment} in {target.name}")
    assert not broken, "broken links:\n" + "\n".join(broken)


# ---------------------------------------------------------------- training configs


def _json_configs() -> list[tuple[str, dict]]:
    out = []
    for path in DOC_FILES:
        for info, body in _fenced_blocks(path.read_text()):
            if info.split()[:1] == ["json"]:
                d = json.loads(body)  # a JSON block that does not parse is a doc error too
                if isinstance(d, dict) and "model" in d and "train_data" in d:
                    out.append((_rel(path), d))
    return out


def test_documented_training_configs_are_valid():
    from keras_pose.models.registry import build_model
    from keras_pose.training import TrainConfig
    from keras_pose.training.config import phase_freeze

    configs = _json_configs()
    assert any(cfg.get("phases") for _, cfg in configs), "docs/training.md should show a phases example"
    for where, d in configs:
        cfg = TrainConfig.from_dict(d)
        patterns = [p["train"] for p in cfg.phases if p.get("train")]
        frozen = [n for p in cfg.phases for n in phase_freeze(p)]
        if not patterns and not frozen:
            continue
        model = build_model(cfg.model, pretrained=False)
        for name in frozen:
            model.get_layer(name)  # a ValueError if the documented model has no such layer
        paths = [v.path for v in model.trainable_variables]
        for p in patterns:
            assert any(re.search(p, v) for v in paths), f"{where}: phase regex {p!r} matches no variable of {cfg.model}"
        names = set(model.output_names)
        for phase in cfg.phases:
            for key in phase.get("loss_weights", {}):
                assert any(key == n or re.fullmatch(key, n) for n in names), f"{where}: loss weight {key!r}"


# ---------------------------------------------------------------- docstrings


def _public_modules() -> list[str]:
    import keras_pose

    names = ["keras_pose"] + [m.name for m in pkgutil.walk_packages(keras_pose.__path__, "keras_pose.")]
    return sorted(n for n in names if not any(part.startswith("_") for part in n.split(".")))


def _docstring(obj) -> str | None:
    if inspect.isclass(obj):
        doc = obj.__dict__.get("__doc__")  # not inherited from a base class
        if doc and dataclasses.is_dataclass(obj) and doc.startswith(f"{obj.__name__}("):
            return None  # the signature dataclasses writes when there is no docstring
        return doc
    return obj.__doc__


def test_public_functions_and_classes_have_docstrings():
    missing = []
    for name in _public_modules():
        module = importlib.import_module(name)
        for attr, obj in vars(module).items():
            if attr.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if getattr(obj, "__module__", None) != name:
                continue  # imported from elsewhere; checked where it is defined
            doc = _docstring(obj)
            if not (doc and doc.strip()):
                missing.append(f"{name}.{attr}")
    assert not missing, f"{len(missing)} public functions / classes without a docstring:\n" + "\n".join(sorted(missing))


def _import_graph() -> dict:
    """Module -> the keras_pose modules it imports (at module level or inside functions), from the source."""
    import ast

    package = ROOT / "keras_pose"
    modules = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name):  # the module a dotted import name lands in (a package's attribute -> the package)
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph = {}
    for name, path in modules.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            else:
                continue
            for n in names:
                target = owner(n) if n.startswith("keras_pose") else ""
                # a module importing its own parent package (e.g. for __version__) is not a cycle
                if target and target != name and not name.startswith(target + "."):
                    targets.add(target)
        graph[name] = targets
    return graph


def test_no_two_modules_import_each_other():
    """Data flows one way (library -> predictor -> CLI): no cycle in the import graph, lazy imports included."""
    graph = _import_graph()
    assert "keras_pose.inference" in graph and "keras_pose.cli" in graph
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert cycles == [], f"modules that import each other: {cycles}"
    # the library never imports the predictor layer or what sits on it (figures, the command line)
    library = [m for m in graph if not m.startswith(("keras_pose.cli", "keras_pose.inference", "keras_pose.viz"))]
    offenders = {m: sorted(t for t in graph[m] if t.startswith(("keras_pose.cli", "keras_pose.inference")))
                 for m in library}
    assert {m: t for m, t in offenders.items() if t} == {}
