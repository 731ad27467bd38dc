"""Secrets in the workload's command line never reach run.json, the warehouse or the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "data" / "collect" / "fakes"))
from harness import PYLIB, REPO  # noqa: E402

from dlwh.collect.redact import redact_argv, secret_name, secret_option  # noqa: E402

PY = sys.executable
PLANTED = "Pl4nted-Pa55w0rd-9f1c"


@pytest.mark.parametrize("argv, expected, count", [
    (["train.py", "--password", PLANTED], ["train.py", "--password", "***"], 1),
    (["train.py", f"--db-password={PLANTED}"], ["train.py", "--db-password=***"], 1),
    (["train.py", "--token", PLANTED, "--lr", "0.1"], ["train.py", "--token", "***", "--lr", "0.1"], 1),
    (["train.py", f"--hf_token={PLANTED}"], ["train.py", "--hf_token=***"], 1),
    (["train.py", "--api-key", PLANTED], ["train.py", "--api-key", "***"], 1),
    (["train.py", "--secret", f"-{PLANTED}"], ["train.py", "--secret", "***"], 1),
    (["train.py", "--aws-secret-access-key", PLANTED], ["train.py", "--aws-secret-access-key", "***"], 1),
    (["env", f"WANDB_API_KEY={PLANTED}", f"HF_TOKEN={PLANTED}", "python"],
     ["env", "WANDB_API_KEY=***", "HF_TOKEN=***", "python"], 2),
    (["train.py", f"db.password={PLANTED}"], ["train.py", "db.password=***"], 1),
    (["train.py", f"postgres://me:{PLANTED}@db.example/x"], ["train.py", "postgres://me:***@db.example/x"], 1),
    (["train.py", f"--data=https://h/x?a=1&api_key={PLANTED}"], ["train.py", "--data=https://h/x?a=1&api_key=***"], 1),
    # not secrets
    (["train.py", "--tokenizer", "gpt2", "--max-tokens", "512", "--sort-key", "name", "lr=0.1"],
     ["train.py", "--tokenizer", "gpt2", "--max-tokens", "512", "--sort-key", "name", "lr=0.1"], 0),
    (["train.py", "--token", "--lr", "0.1"], ["train.py", "--token", "--lr", "0.1"], 0),
    (["train.py", "https://user@host/x", "https://host/x?page=2"], ["train.py", "https://user@host/x", "https://host/x?page=2"], 0),
])
def test_redact_argv(argv, expected, count):
    assert redact_argv(argv) == (expected, count)


def test_secret_names():
    assert [secret_option(n) for n in ("--password", "--passwd", "--pwd", "--client-secret", "--private-key",
                                       "--tokenizer", "--key", "--num-tokens")] == [True] * 5 + [False] * 3
    assert [secret_name(n) for n in ("WANDB_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "PATH", "LR")] == \
        [True, True, True, False, False]


def _collect(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=f"{PYLIB}{os.pathsep}{REPO}")
    env.pop("DLWH_RUN_DIR", None)
    secrets = ["--password", PLANTED, f"--db-password={PLANTED}", f"HF_TOKEN={PLANTED}",
               f"postgres://me:{PLANTED}@db.example/x", f"https://h/x?api_key={PLANTED}", "--epochs", "1"]
    # the workload itself gets its arguments unchanged; only the record is redacted
    workload = [PY, "-c", "import json, os, sys; assert sys.argv[1:] == json.loads(os.environ['EXPECT'])", *secrets]
    env["EXPECT"] = json.dumps(secrets)  # the environment is not recorded
    return subprocess.run([PY, "-m", "dlwh.cli", "collect", "--source", "nvml", "--interval-ms", "50",
                           "--out", str(tmp_path / "run"), "--save-output", *extra, "--", *workload],
                          env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)


@pytest.mark.slow
def test_a_planted_password_is_in_no_file_of_the_run_nor_the_warehouse(tmp_path):
    p = _collect(tmp_path)
    assert p.returncode == 0, p.stderr
    assert PLANTED not in p.stdout + p.stderr
    assert ("dlwh collect: 5 command-line value(s) that look like secrets are stored as *** in run.json "
            "(--no-redact keeps them)") in p.stderr.splitlines()
    files = [f for f in (tmp_path / "run").rglob("*") if f.is_file()]
    assert {f.name for f in files} >= {"run.json", "nvml.csv", "stdout.log", "stderr.log"}
    assert [f.name for f in files if PLANTED.encode() in f.read_bytes()] == []
    command = json.loads((tmp_path / "run" / "run.json").read_text())["command"]
    assert command[3:] == ["--password", "***", "--db-password=***", "HF_TOKEN=***", "postgres://me:***@db.example/x",
                           "https://h/x?api_key=***", "--epochs", "1"]
    # and so not in the warehouse either
    db = tmp_path / "w.duckdb"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    q = subprocess.run([PY, "-m", "dlwh.cli", "ingest", str(tmp_path / "run"), "--db", str(db)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert q.returncode == 0, q.stderr
    assert PLANTED not in q.stdout + q.stderr
    stored = [p for p in tmp_path.glob("w.duckdb*") if PLANTED.encode() in p.read_bytes()]
    assert stored == []


@pytest.mark.slow
def test_no_redact_keeps_the_command_line(tmp_path):
    p = _collect(tmp_path, "--no-redact")
    assert p.returncode == 0, p.stderr
    assert "look like secrets" not in p.stderr
    command = json.loads((tmp_path / "run" / "run.json").read_text())["command"]
    assert command[3:5] == ["--password", PLANTED]


@pytest.mark.parametrize("args, code, message", [
    (["--", "no-such-program-dlwh", "--password", PLANTED],
     127, "error: command not found: 'no-such-program-dlwh'; check the name or your PATH"),
    (["--out", "used", "--", "true", "--password", PLANTED],
     2, "error: used already exists and is not an empty directory; choose another --out"),
    (["--source", "nvml,rapl", "--", "true", f"--token={PLANTED}"],
     2, "error: unknown source 'rapl' in --source; use auto or any of nvml,nvidia-smi,perf,ipmi,powermetrics"),
])
def test_collect_errors_never_show_the_command_line(tmp_path, monkeypatch, args, code, message):
    from typer.testing import CliRunner

    from dlwh.cli import app

    monkeypatch.chdir(tmp_path)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    r = CliRunner().invoke(app, ["collect", *args])
    assert r.exit_code == code
    assert r.output.strip().splitlines() == [message]
    assert PLANTED not in r.output
