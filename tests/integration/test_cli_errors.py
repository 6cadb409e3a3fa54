"""Mistakes around the CLI, not in its arguments: a DATABASE_URL that is no database, output that cannot be
written. Each is one sentence and an exit code, never a traceback (the attack review found tracebacks for all)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _core(*args: str, url: str, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:  # noqa: ANN001
    env = {**os.environ, "DATABASE_URL": url}
    return subprocess.run([sys.executable, "-m", "core", *args], stdout=stdout, stderr=subprocess.PIPE, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("make_url, commands, code, said", [
    (lambda tmp: "sqlite:////etc/passwd/a.db", [["db", "setup"]], 2,
     "DATABASE_URL: the folder of the SQLite file cannot be made"),
    (lambda tmp: f"sqlite:///{tmp / 'notes.txt'}", [["db", "setup"], ["status"]], 1,
     "DATABASE_URL points at a file that is not a SQLite database"),
])
def test_a_database_url_that_is_no_database_is_one_sentence(tmp_path: Path, make_url, commands: list[list[str]],  # noqa: ANN001
                                                             code: int, said: str) -> None:
    (tmp_path / "notes.txt").write_text("these are my notes, not a database\n" * 100)
    for command in commands:
        proc = _core(*command, url=make_url(tmp_path))
        assert proc.returncode == code and said in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_output_that_cannot_be_written_is_one_sentence(tmp_path: Path) -> None:
    with open("/dev/full", "w") as full:
        proc = _core("config", url=f"sqlite:///{tmp_path / 'a.db'}", stdout=full)
    assert proc.returncode == 1 and proc.stderr.strip() == "error: No space left on device.", proc.stderr


def test_a_mistyped_sqlite_path_is_refused_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """A typo's path became a new, empty file (and its folders), reported as tables to restore from a backup."""
    for command in (["status"], ["seed", "--test-data", "demo"], ["users", "list"]):
        proc = _core(*command, url=f"sqlite:///{tmp_path / 'typo' / 'a.db'}")
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip() == (f"error: DATABASE_URL: there is no SQLite file at {tmp_path / 'typo' / 'a.db'}; "
                                       "check the path, or create the database with `python -m core db setup`.")
        assert not (tmp_path / "typo").exists()
    assert _core("db", "setup", url=f"sqlite:///{tmp_path / 'new' / 'a.db'}").returncode == 0
    assert (tmp_path / "new" / "a.db").is_file()


def test_the_api_on_a_taken_port_or_unknown_host_is_one_sentence(tmp_path: Path) -> None:
    """It printed "agent API on http://…", then uvicorn's error, and exited 3 (a refused permission here)."""
    import socket

    url = f"sqlite:///{tmp_path / 'a.db'}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _core("api", "--host", "127.0.0.1", "--port", str(port), url=url)
    assert proc.returncode == 2 and proc.stdout == "", proc.stdout
    assert proc.stderr.startswith(f"error: Cannot listen on 127.0.0.1:{port} (Address already in use)")
    proc = _core("api", "--host", "203.0.113.5", "--port", "8000", url=url)  # TEST-NET-3: no address of ours
    assert (proc.returncode, proc.stderr.strip()) == (2, "error: Cannot listen on 203.0.113.5:8000 (Cannot assign "
                                                         "requested address); check --host and --port.")


def test_each_kind_of_mistake_has_the_exit_code_the_readme_gives(tmp_path: Path) -> None:
    """The README's contract: 1 when what is named does not exist or the work failed, 2 for bad input or settings,
    3 for a refused permission; each one sentence."""
    url = f"sqlite:///{tmp_path / 'a.db'}"
    assert _core("db", "setup", url=url).returncode == 0
    added = subprocess.run([sys.executable, "-m", "core", "users", "add", "pat", "--role", "product_owner"],
                           input="a long enough password\n", capture_output=True, text=True, timeout=60,
                           env={**os.environ, "DATABASE_URL": url})
    assert added.returncode == 0, added.stderr
    for args, code, said in (
        (["users", "disable", "nobody"], 1, "No user named 'nobody'."),
        (["--actor", "nobody", "status"], 1, "No active user named 'nobody'."),
        (["users", "add", "x", "--role", "wizard"], 2, "role"),
        (["activate", "--mode", "sideways", "--reason", "x"], 2, "sideways"),
        (["--actor", "pat", "activate", "--mode", "full", "--reason", "x"], 3, "product_owner"),
    ):
        proc = _core(*args, url=url)
        assert (proc.returncode, "Traceback" in proc.stderr) == (code, False), (args, proc.stderr)
        *usage, sentence = proc.stderr.strip().splitlines()  # argparse puts the usage before a bad flag's sentence
        assert said in sentence and all(line.startswith(("usage:", " ")) for line in usage), (args, proc.stderr)


def test_an_interrupted_seed_says_what_it_may_leave_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture) -> None:
    """The crash review: Ctrl-C during a seed printed only "interrupted", and left shops, clients and instances."""
    from core.cli import db_commands, main

    def interrupted(**_kwargs: object) -> None:
        raise KeyboardInterrupt  # Ctrl-C while the conversations are written

    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'a.db'}")
    assert main(["db", "setup"]) == 0
    monkeypatch.setattr(db_commands, "seed", interrupted)
    assert main(["seed", "--test-data", "load", "--conversations", "1000"]) == 130
    err = capsys.readouterr().err
    assert err.startswith("seed interrupted: the database may hold part of it") and "Traceback" not in err


@pytest.mark.parametrize("environment, docs", [("development", " (docs at /docs)"), ("staging", "")])
def test_the_api_points_at_its_docs_only_where_it_serves_them(tmp_path: Path, environment: str, docs: str) -> None:
    """In staging it said '(docs at /docs)', and /docs answered 404 (a CLI review)."""
    from tests.support.net import free_port

    port = free_port()
    env = {**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}", "ENVIRONMENT": environment,
           "COOKIE_KEY": "a-real-staging-cookie-secret", "AUDIT_KEY": "k" * 40}
    proc = subprocess.Popen([sys.executable, "-m", "core", "api", "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = proc.stdout.readline()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
    assert first == f"agent API on http://127.0.0.1:{port}{docs}\n"


def test_a_sqlite_url_with_options_of_its_own_opens_as_it_says(tmp_path: Path) -> None:
    """`db setup` accepted sqlite:///file:…?mode=ro&uri=true and every other command then failed to open it."""
    made = _core("db", "setup", url=f"sqlite:///{tmp_path / 'a.db'}")
    assert made.returncode == 0, made.stderr
    url = f"sqlite:///file:{tmp_path / 'a.db'}?mode=ro&uri=true"
    proc = _core("status", url=url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("agent system: STOPPED (mode off, settings version 1)")
