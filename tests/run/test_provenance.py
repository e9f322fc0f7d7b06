"""meta.json names the code that ran: the checkout's commit, or the one an install was built from."""

import json
import runpy
import shutil
import subprocess
from pathlib import Path

import pytest

from nqs_cli.run import run_dir as rd

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkout_records_its_head():
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    meta = rd.meta(["nqs"], 0)
    assert meta["git_commit"] == head.stdout.strip() and meta["git_commit_from"] == "checkout"
    assert meta["versions"]["nqs"]


def test_an_installed_copy_records_the_commit_it_was_built_from(tmp_path, monkeypatch):
    """A package outside any checkout (a non-editable install) reads nqs_cli/_build.json, which
    the build writes (setup.py: BuildWithCommit)."""
    package = tmp_path / "site" / "nqs_cli"
    package.mkdir(parents=True)
    (package / "_build.json").write_text(json.dumps({"git_commit": "0123abcd" * 5, "git_dirty": False}))
    monkeypatch.setattr(rd, "PACKAGE", package)
    meta = rd.meta(["nqs"], 0)
    assert meta["git_commit"] == "0123abcd" * 5 and meta["git_commit_from"] == "build"


def test_the_build_hook_writes_the_commit(tmp_path):
    if shutil.which("git") is None or subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True).returncode != 0:
        pytest.skip("not a git checkout")
    build_hook = runpy.run_path(str(ROOT / "setup.py"), run_name="build_hook")
    info = build_hook["source_commit"]()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert info["git_commit"] == head and isinstance(info["git_dirty"], bool)
