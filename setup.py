"""Build hook: the installed package records the commit it was built from (nqs_cli/_build.json),
so a run's meta.json names it after a non-editable install too. Everything else is in pyproject.toml."""

import json
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent


def source_commit() -> dict:
    """The checkout's commit and whether its tracked files differ from it (nothing outside a checkout)."""
    def git(*args):
        try:
            out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout.strip() if out.returncode == 0 else None

    commit = git("rev-parse", "HEAD")
    if not commit:
        return {"git_commit": None}
    return {"git_commit": commit, "git_dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


class BuildWithCommit(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "nqs_cli" / "_build.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(source_commit()) + "\n")


if __name__ == "__main__":  # as the build runs it (importing this file runs nothing)
    setup(cmdclass={"build_py": BuildWithCommit})
