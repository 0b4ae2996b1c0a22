"""The corpus: configurations shaped like the ones people publish (tests/corpus/*.yml, written
for llmcombo), each with its expected verdict in a header comment:

* ``# expect: ok`` -- no error and no warning; ``# expect: ok warn=a,b`` -- no error, and
  warnings with these codes (the file is suspicious, mergekit runs it);
* ``# expect: error [PATH ...]`` -- errors, one at each PATH given;
* ``# expect: unreadable`` -- not a configuration at all (not YAML, empty, a list ...): one clear
  message, no traceback.

Every accepted file round-trips (import -> generate -> the same document under mergekit's own
models), and llmcombo's reproduction of mergekit's schema (productline/documents.py) accepts and
refuses the same documents as mergekit's models, reading them the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).parent / "corpus"
FILES = sorted(CORPUS.glob("*.yml"))
_EXPECT = re.compile(r"^#\s*expect:\s*(ok|error|unreadable)(.*)$", re.M)


def expectation(path: Path) -> tuple[str, list[str]]:
    m = _EXPECT.search(path.read_text(encoding="utf-8"))
    assert m, f"{path.name} has no '# expect:' line"
    verdict, rest = m.group(1), m.group(2).split()
    if verdict == "ok":
        codes = [c for r in rest if r.startswith("warn=") for c in r[5:].split(",") if c]
        return verdict, codes
    return verdict, rest


def load(path: Path):
    from llmcombo.importer import load_any

    return load_any(path)


def issues_of(cfg):
    from llmcombo.validation import validate_full

    return validate_full(cfg, preflight=False)


def test_the_corpus_is_large_and_covers_every_verdict():
    verdicts = [expectation(p)[0] for p in FILES]
    assert len(FILES) >= 80
    assert verdicts.count("ok") >= 50 and verdicts.count("error") >= 20
    assert verdicts.count("unreadable") >= 3


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_verdict(path):
    from llmcombo.errors import UserError

    verdict, details = expectation(path)
    try:
        cfg = load(path)
    except UserError as exc:
        assert verdict == "unreadable", f"{path.name}: {exc}"
        assert exc.message and "Traceback" not in exc.message
        return
    assert verdict != "unreadable", f"{path.name} was read as a configuration"
    issues = issues_of(cfg)
    errors = [i for i in issues if i.is_error]
    shown = [i.format() for i in issues]
    if verdict == "ok":
        assert not errors, shown  # a false error: mergekit runs this
        warned = {i.code for i in issues if not i.is_error}
        assert warned == set(details), shown
    else:
        assert errors, shown
        for where in details:
            assert any(i.path == where for i in errors), (where, shown)


def _mergekit_documents(path: Path) -> list[tuple[str, dict]]:
    """``(kind, document)`` for each YAML document of a mergekit file (none for llmcombo files
    and unreadable ones)."""
    from llmcombo.configuration import Documents, is_mergekit_document, parse_yaml_text
    from llmcombo.errors import UserError

    try:
        data = parse_yaml_text(path.read_text(encoding="utf-8"))
    except UserError:
        return []
    docs = list(data) if isinstance(data, Documents) else [data]
    out = []
    for d in docs:
        kind = is_mergekit_document(d)
        if kind in ("merge", "moe"):
            out.append((kind, {k: v for k, v in d.items() if k != "name"}))
    return out


def _mergekit_reads(kind: str, doc: dict):
    from llmcombo.engine.schema import parse

    try:
        return True, parse(kind, doc).model_dump(mode="json")
    except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError or mergekit's RuntimeError
        return False, type(exc).__name__


def _ours_reads(kind: str, doc: dict):
    from llmcombo.productline.documents import parse

    try:
        return True, parse(kind, doc).model_dump(mode="json")
    except Exception as exc:  # noqa: BLE001
        return False, type(exc).__name__


MERGEKIT_FILES = [p for p in FILES if _mergekit_documents(p)]


@pytest.mark.parametrize("path", MERGEKIT_FILES, ids=[p.stem for p in MERGEKIT_FILES])
def test_our_schema_reads_every_document_as_mergekit_does(path):
    for kind, doc in _mergekit_documents(path):
        theirs, ours = _mergekit_reads(kind, doc), _ours_reads(kind, doc)
        assert theirs[0] == ours[0], (path.name, theirs, ours)
        if theirs[0]:
            assert theirs[1] == ours[1]


def test_every_document_mergekit_refuses_is_an_error_for_llmcombo():
    refused = [p for p in MERGEKIT_FILES
               if any(not _mergekit_reads(k, d)[0] for k, d in _mergekit_documents(p))]
    assert len(refused) >= 5
    for path in refused:
        assert any(i.is_error for i in issues_of(load(path))), path.name


ACCEPTED = [p for p in FILES if expectation(p)[0] == "ok"]


@pytest.mark.parametrize("path", ACCEPTED, ids=[p.stem for p in ACCEPTED])
def test_accepted_files_round_trip_under_mergekits_models(path):
    from llmcombo.configuration import dump_yaml
    from llmcombo.engine.schema import parse
    from llmcombo.generate import document_text, documents_of, to_document
    from llmcombo.importer import as_configuration

    cfg = load(path)
    kind, doc = to_document(cfg, resolve=False)
    generated = [d for d in yaml.safe_load_all(document_text(kind, doc))]
    assert generated == documents_of(kind, doc)
    original = _mergekit_documents(path)
    if original:  # a mergekit file: the same documents under mergekit's models
        assert len(generated) == len(original)
        raw = yaml.safe_load_all(path.read_text(encoding="utf-8"))
        names = [d.get("name") for d in raw if d is not None]
        for (k, before), after, name in zip(original, generated, names):
            if kind == "multimerge":
                assert after.get("name") == name or (name is None and "name" not in after)
                after = {x: v for x, v in after.items() if x != "name"}
            assert parse(k, after).model_dump() == parse(k, before).model_dump(), path.name
    # and the llmcombo configuration survives its own YAML
    again = as_configuration(yaml.safe_load(dump_yaml(cfg)))
    assert to_document(again, resolve=False) == (kind, doc)
