"""Configuration cannot reach SQL unchecked, point file access outside the data roots, or load pickled weights."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import duckdb
import pytest

from lmrec_assets.resources import ArtifactStoreResource, DatasetResource, confined
from lmrec_assets.warehouse import qualified, quote_identifier, relation_metadata

PACKAGE = Path(__file__).resolve().parents[2] / "lmrec_assets"


@pytest.mark.parametrize("name", ['raw.items; drop table raw.items', "evil.items", 'raw."items"', "raw.Items", "raw.",
                                  "raw.items--", "marts.split_train union select 1"])
def test_table_names_outside_the_allow_list_are_refused(name):
    with pytest.raises(ValueError):
        qualified(name)
    with duckdb.connect() as con, pytest.raises(ValueError):
        relation_metadata(con, name)


def test_quoted_identifiers_survive_hostile_names():
    hostile = 'lmrec"; drop table t; --'
    with duckdb.connect() as con:
        con.execute("create table t as select 1 as x")
        con.execute(f"attach ':memory:' as {quote_identifier(hostile)}")
        con.execute(f"use {quote_identifier(hostile)}")
        assert con.execute("select current_database()").fetchone()[0] == hostile
        con.execute("use memory")
        assert con.execute("select x from t").fetchone()[0] == 1


def test_artifact_folders_stay_under_the_data_root(tmp_path):
    store = ArtifactStoreResource(data_dir=str(tmp_path))
    assert store.model_dir("ease", "abc123").is_relative_to(tmp_path.resolve() / "artifacts")
    for model, version in [("../../outside", "v1"), ("ease", "../../../outside"), ("/etc", "v1")]:
        with pytest.raises(ValueError, match="outside the configured data root"):
            store.model_dir(model, version)
    assert not (tmp_path.parent / "outside").exists()


def test_landing_links_that_leave_the_folder_are_refused(tmp_path):
    landing, elsewhere = tmp_path / "landing", tmp_path / "elsewhere"
    landing.mkdir()
    elsewhere.mkdir()
    (landing / "good.csv").write_text("user_id,item_id,timestamp\n")
    (elsewhere / "secret.csv").write_text("user_id,item_id,timestamp\n")
    dataset = DatasetResource(landing_dir=str(landing))
    assert [p.name for p in dataset.landing_files()] == ["good.csv"]
    (landing / "linked.csv").symlink_to(elsewhere / "secret.csv")
    with pytest.raises(ValueError, match="outside the configured data root"):
        dataset.landing_files()


def test_files_source_entries_stay_inside_the_dataset_path(tmp_path):
    root = tmp_path / "exports"
    root.mkdir()
    (tmp_path / "private.csv").write_text("user_id,item_id,timestamp\nu,i,1\n")
    spec = {"interactions": "../private.csv", "items": "items.csv"}
    dataset = DatasetResource(source="files", path=str(root), files_spec=json.dumps(spec))
    with pytest.raises(ValueError, match="outside the configured data root"):
        dataset.load()
    assert confined("items.csv", root) == root.resolve() / "items.csv"  # relative entries are taken from the root


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else ""
            yield node, owner, name, {k.arg: k.value for k in node.keywords}


def _is_true(node) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_model_weights_load_only_from_safetensors_or_weights_only():
    """Every weight-loading call in the package: safetensors for HF / sentence-transformers models, `weights_only=True`
    for torch.load, no pickle. (PEFT adapters load safetensors first and torch.load(weights_only=True) otherwise.)"""
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        where = path.relative_to(PACKAGE.parent)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                modules = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(m and m.split(".")[0] in ("pickle", "dill", "joblib", "cloudpickle") for m in modules):
                    problems.append(f"{where}:{node.lineno} imports a pickle module")
        for node, owner, name, keywords in _calls(tree):
            if owner == "torch" and name == "load" and not _is_true(keywords.get("weights_only")):
                problems.append(f"{where}:{node.lineno} torch.load without weights_only=True")
            if owner.startswith("AutoModel") and name == "from_pretrained" and not _is_true(keywords.get("use_safetensors")):
                problems.append(f"{where}:{node.lineno} {owner}.from_pretrained without use_safetensors=True")
            if name == "SentenceTransformer":
                kwargs = keywords.get("model_kwargs")
                ok = isinstance(kwargs, ast.Dict) and any(
                    isinstance(k, ast.Constant) and k.value == "use_safetensors" and _is_true(v)
                    for k, v in zip(kwargs.keys, kwargs.values)
                )
                if not ok:
                    problems.append(f"{where}:{node.lineno} SentenceTransformer without use_safetensors")
            if owner == "np" and name == "load" and _is_true(keywords.get("allow_pickle")):
                problems.append(f"{where}:{node.lineno} np.load(allow_pickle=True)")
    assert not problems, "\n".join(problems)
