"""Publishing: the model card (lineage, YAML, evaluation), dry runs without network, and a token
that never shows up anywhere."""

from __future__ import annotations

import json
import logging
import socket
from pathlib import Path

import pytest

from llmcombo import hub, preflight
from llmcombo.errors import OfflineError, UserError
from llmcombo.hub import build_card, publish
from llmcombo.run import LINEAGE_FILE, NullProgress, run_mergekit

SECRET = "hf_llmcomboTESTsecretTOKEN0123456789abcdef"


def _tiny_model(folder: Path, seed: int) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    LlamaForCausalLM(cfg).save_pretrained(folder)
    (folder / "tokenizer.json").write_text("{}")  # copied, never parsed, in these tests
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> Path:
    """A real llmcombo output folder (linear merge of two tiny models)."""
    root = tmp_path_factory.mktemp("hub")
    a, b = _tiny_model(root / "a", 1), _tiny_model(root / "b", 2)
    doc = {"merge_method": "linear", "dtype": "float32",
           "models": [{"model": str(a), "parameters": {"weight": 0.3}},
                      {"model": str(b), "parameters": {"weight": 0.7}}]}
    out = root / "merged"
    run_mergekit("merge", doc, out, progress=NullProgress())
    return out


@pytest.fixture
def folder(merged, tmp_path) -> Path:
    """A private copy of the merged folder for each test (cards are written into it)."""
    import shutil

    dest = tmp_path / "my-merge"
    shutil.copytree(merged, dest)
    return dest


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a network connection was opened")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


@pytest.fixture
def token_env(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", SECRET)


# ---- the model card -------------------------------------------------------------------------


def test_card_holds_the_lineage_and_the_yaml(folder):
    card = build_card(folder, repo_id="me/my-merge", license="apache-2.0")
    text = str(card)
    yaml_text = (folder / "mergekit_config.yml").read_text().strip()
    lineage = json.loads((folder / LINEAGE_FILE).read_text())
    # what the card shows is the files with local folders replaced by their names
    assert hub.public_text(yaml_text, lineage["inputs"]) in text
    assert hub.public_text(json.dumps(lineage, indent=2), lineage["inputs"]) in text
    assert "model: local:a" in text and "model: local:b" in text
    assert "## Lineage" in text and f"mergekit {lineage['versions']['mergekit']}" in text
    assert "**Linear** method (`linear`)" in text
    assert card.data.license == "apache-2.0"
    assert {"merge", "mergekit"} <= set(card.data.tags) and "moe" not in card.data.tags
    assert card.data.model_name == "my-merge"
    assert card.data.base_model is None  # local inputs are not Hub ids
    for row in lineage["inputs"]:
        assert f"`local:{Path(row['given']).name}`" in text
        assert row["resolved"] not in text
    assert str(folder.parent) not in text and str(Path.home()) not in text


def _absolute_paths(text: str) -> list[str]:
    import re

    return [m for m in re.findall(r"(?<![\w:/.])/[\w.-]+/[^\s`'\"|)]*", text)]


def test_card_never_contains_local_absolute_paths(folder, zoo_dir):
    """A merge of the zoo: the resolved zoo folders (in the home cache) become zoo:NAME again, the
    output folder and cache folders in the options are not shown either."""
    lineage = json.loads((folder / LINEAGE_FILE).read_text())
    base, dom = str(zoo_dir / "base"), str(zoo_dir / "domotica")
    lineage["inputs"] = [
        {"field": "merge.base_model", "role": "base", "given": "zoo:base", "resolved": base},
        {"field": "merge.models[0].model", "role": "model", "given": "zoo:domotica",
         "resolved": dom},
        {"field": "merge.models[1].model", "role": "model", "given": "~/models/tiempo-ft",
         "resolved": str(Path.home() / "models" / "tiempo-ft")}]
    lineage["mergekit_config"] = {"merge_method": "ties", "base_model": base, "models": [
        {"model": dom, "parameters": {"density": 0.5}},
        {"model": str(Path.home() / "models" / "tiempo-ft"), "parameters": {"density": 0.5}}]}
    lineage["options"] = {"lora_merge_cache": str(Path.home() / ".cache" / "llmcombo" / "lora"),
                          "out": str(folder)}
    (folder / LINEAGE_FILE).write_text(json.dumps(lineage))
    (folder / "mergekit_config.yml").write_text(
        f"merge_method: ties\nbase_model: {base}\nmodels:\n  - model: {dom}\n")
    text = str(build_card(folder, repo_id="me/ties"))
    assert _absolute_paths(text) == [], _absolute_paths(text)
    for secret in (str(zoo_dir), str(Path.home()), str(folder)):
        assert secret not in text
    assert "base_model: zoo:base" in text and "model: zoo:domotica" in text
    assert "local:tiempo-ft" in text
    assert "https://github.com/arcee-ai/mergekit" in text  # URLs are kept


def test_card_base_models_are_the_hub_ids_and_moe_is_tagged(folder):
    lineage = json.loads((folder / LINEAGE_FILE).read_text())
    lineage["kind"] = "moe"
    lineage["mergekit_config"] = {"base_model": "org/base", "gate_mode": "cheap_embed",
                                  "experts": [{"source_model": "org/expert-a"},
                                              {"source_model": "zoo:tiempo"}]}
    lineage["inputs"] = [
        {"field": "moe.base_model", "role": "base", "given": "org/base", "resolved": "org/base"},
        {"field": "moe.experts[0].source_model", "role": "expert", "given": "org/expert-a",
         "resolved": "org/expert-a"},
        {"field": "moe.experts[1].source_model", "role": "expert", "given": "zoo:tiempo",
         "resolved": "/cache/zoo/tiempo"}]
    (folder / LINEAGE_FILE).write_text(json.dumps(lineage))
    card = build_card(folder)
    assert card.data.base_model == ["org/base", "org/expert-a"]
    assert "moe" in card.data.tags
    assert "gate mode `cheap_embed`" in str(card)
    assert "`zoo:tiempo`" in str(card) and "/cache/zoo" not in str(card)


def test_card_has_an_evaluation_table_when_results_exist(folder):
    (folder / "evaluation.csv").write_text("model,task,accuracy\nmy-merge,domotica,0.8125\n"
                                           "my-merge,tiempo,0.75\n")
    text = str(build_card(folder))
    assert "## Evaluation" in text
    assert "| model | task | accuracy |" in text
    assert "| my-merge | domotica | 0.8125 |" in text


def test_card_without_evaluation_has_no_section(folder):
    assert "## Evaluation" not in str(build_card(folder))


def test_card_of_a_plain_mergekit_folder(folder):
    (folder / LINEAGE_FILE).unlink()
    text = str(build_card(folder))
    assert hub.public_text((folder / "mergekit_config.yml").read_text().strip()) in text
    assert "model: local:a" in text and str(folder.parent.parent) not in text
    assert "## Lineage" not in text


# ---- dry run --------------------------------------------------------------------------------


def test_dry_run_writes_the_card_and_opens_no_connection(folder, no_network, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    (folder / ".secret-notes").write_text("not for upload")
    result = publish(folder, "me/my-merge", license="mit", dry_run=True)
    assert result.dry_run and result.commit_url is None
    assert result.card_path == folder / "README.md"
    card = (folder / "README.md").read_text()
    assert "license: mit" in card and "mergekit_config" not in card.split("---")[1]
    assert "README.md" in result.files and "model.safetensors" in result.files
    assert LINEAGE_FILE in result.files and "mergekit_config.yml" in result.files
    assert ".secret-notes" not in result.files
    assert result.total_bytes > 0
    assert "dry run: would upload" in result.summary()


def test_cli_publish_dry_run(folder, no_network, capsys):
    from llmcombo.cli import main

    assert main(["publish", str(folder), "--repo", "me/my-merge", "--dry-run",
                 "--license", "apache-2.0"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("dry run: would upload") and "model.safetensors" in out


# ---- uploads (the Hub is replaced by fakes: nothing leaves the machine) ----------------------


class FakeApi:
    calls: list = []
    fail_with: Exception | None = None

    def __init__(self, token=None, **kwargs):
        self.token = token

    def create_repo(self, repo_id, **kwargs):
        FakeApi.calls.append(("create_repo", repo_id, kwargs, self.token))
        if FakeApi.fail_with is not None:
            raise FakeApi.fail_with

    def create_commit(self, **kwargs):
        FakeApi.calls.append(("create_commit", kwargs))

        class Info:
            commit_url = f"https://huggingface.co/{kwargs['repo_id']}/commit/abc"

        return Info()


@pytest.fixture
def fake_hub(monkeypatch):
    import huggingface_hub

    FakeApi.calls = []
    FakeApi.fail_with = None
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setattr(preflight.models, "hub_reachable", lambda *a, **k: True)
    return FakeApi


def _assert_secret_nowhere(folder: Path, *texts: str) -> None:
    for text in texts:
        assert SECRET not in text
    for path in folder.rglob("*"):
        if path.is_file():
            assert SECRET.encode() not in path.read_bytes(), path


def test_upload_uses_the_token_and_never_shows_it(folder, fake_hub, token_env, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    result = publish(folder, "me/my-merge", private=True)
    assert result.commit_url == "https://huggingface.co/me/my-merge/commit/abc"
    (_, repo, kwargs, used_token), (_, upload) = fake_hub.calls
    assert repo == "me/my-merge" and kwargs["private"] is True and used_token == SECRET
    assert upload["repo_id"] == "me/my-merge"
    assert [op.path_in_repo for op in upload["operations"]] == result.files
    assert "README.md" in result.files and not [f for f in result.files if f.startswith(".")]
    captured = capsys.readouterr()
    _assert_secret_nowhere(folder, captured.out, captured.err, caplog.text, result.summary(),
                           repr(result))


def test_uploaded_lineage_and_mergekit_yaml_show_no_local_paths(folder, fake_hub, token_env):
    """The folder keeps its lineage and mergekit YAML as they are (they run on this machine);
    the Hub gets them with the local folders replaced (by what the configuration said, or
    local:NAME)."""
    lineage = (folder / "llmcombo_lineage.json").read_text()
    yaml_file = next(n for n in hub.YAML_FILES if (folder / n).is_file())
    local = [r["resolved"] for r in json.loads(lineage)["inputs"] if r["resolved"].startswith("/")]
    assert local and local[0] in (folder / yaml_file).read_text()
    publish(folder, "me/my-merge")
    (_, upload) = fake_hub.calls[-1]
    sent = {op.path_in_repo: op.path_or_fileobj for op in upload["operations"]}
    for name in ("llmcombo_lineage.json", yaml_file):
        body = sent[name]
        text = body.decode() if isinstance(body, bytes) else Path(body).read_text()
        assert not [p for p in local if p in text], name
    json.loads(sent["llmcombo_lineage.json"])  # still JSON
    assert (folder / "llmcombo_lineage.json").read_text() == lineage  # the folder is unchanged
    weights = next(f for f in sent if f.endswith(".safetensors"))
    assert sent[weights] == str(folder / weights)  # large files go from disk


def test_hub_errors_are_scrubbed(folder, fake_hub, capsys, caplog):
    caplog.set_level(logging.DEBUG)
    fake_hub.fail_with = RuntimeError(f"401 Unauthorized: bad token {SECRET} for me/my-merge")
    with pytest.raises(UserError) as info:
        publish(folder, "me/my-merge", token=SECRET)
    err = info.value
    assert "the Hub refused the upload" in str(err) and "hf_***" in str(err)
    assert err.__cause__ is None and err.__context__ is None
    captured = capsys.readouterr()
    _assert_secret_nowhere(folder, str(err), repr(err), captured.out, captured.err, caplog.text)


def test_cli_publish_never_prints_the_token(folder, fake_hub, token_env, capsys):
    from llmcombo.cli import main

    fake_hub.fail_with = RuntimeError(f"boom {SECRET}")
    assert main(["publish", str(folder), "--repo", "me/my-merge"]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("error: the Hub refused the upload: boom hf_***")
    _assert_secret_nowhere(folder, captured.out, captured.err)
    fake_hub.fail_with = None
    assert main(["publish", str(folder), "--repo", "me/my-merge"]) == 0
    captured = capsys.readouterr()
    assert "uploaded" in captured.out
    _assert_secret_nowhere(folder, captured.out, captured.err)


def test_offline_upload_is_a_clear_error(folder, token_env, no_network, monkeypatch):
    monkeypatch.setattr(preflight.models, "hub_reachable", lambda *a, **k: False)
    with pytest.raises(OfflineError, match=r"not reachable \(offline\?\)") as info:
        publish(folder, "me/my-merge")
    assert "--dry-run" in info.value.hint and SECRET not in str(info.value)


def test_connection_failure_during_upload_is_offline(folder, fake_hub, token_env):
    fake_hub.fail_with = ConnectionError(f"connection reset ({SECRET})")
    with pytest.raises(OfflineError) as info:
        publish(folder, "me/my-merge")
    assert SECRET not in str(info.value) and info.value.__context__ is None


def test_not_logged_in(folder, fake_hub, monkeypatch):
    import huggingface_hub

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    with pytest.raises(UserError, match="not logged in") as info:
        publish(folder, "me/my-merge")
    assert "hf auth login" in info.value.hint
    assert fake_hub.calls == []


def test_a_file_holding_the_token_is_never_uploaded(folder, fake_hub, token_env):
    (folder / "notes.txt").write_text(f"my token is {SECRET}\n")
    with pytest.raises(UserError, match="notes.txt contains your Hugging Face token") as info:
        publish(folder, "me/my-merge")
    assert SECRET not in str(info.value)
    assert fake_hub.calls == []


@pytest.mark.parametrize("repo", ["not a repo", "a/b/c", "-bad-/x"])
def test_bad_repo_names(folder, repo):
    with pytest.raises(UserError, match="is not a valid Hub repository name"):
        publish(folder, repo, dry_run=True)


def test_only_model_folders_are_published(tmp_path):
    with pytest.raises(UserError, match="model folder not found"):
        publish(tmp_path / "nothing", "me/x", dry_run=True)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="has no config.json"):
        publish(tmp_path / "empty", "me/x", dry_run=True)


def test_ignore_patterns_match_upload_folder():
    assert hub.IGNORE_PATTERNS[0] == ".*"
