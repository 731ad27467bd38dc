"""Run a command while recording: the library behind ``dlwh collect``.

``collect(["python", "train.py"])`` checks the sources, creates the run directory, writes
``run.json`` (``end_utc`` null), starts the sources, runs the command with ``DLWH_RUN_DIR`` and
``DLWH_ANCHOR`` set (so its spans land in the run), waits, stops the sources and rewrites
``run.json`` atomically with the end time and exit code. SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1
and SIGUSR2 are passed on to the command's process group
(:mod:`dlwh.collect.signals`); the run directory is completed either way. The workload's process is
handled in :mod:`dlwh.collect.process`, the run directory's name in :mod:`dlwh.collect.rundir`.

``record()`` does the same around a block of Python code in this process.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from dlwh.collect import hostinfo, manifest, nvml, spans
from dlwh.collect.clock import ENV_ANCHOR, Anchor, iso_utc, take_anchor
from dlwh.collect.layers import ENV_LAYER_SPANS
from dlwh.collect.process import CommandNotFound, kill_group, popen, resolve_program, tee
from dlwh.collect.redact import redact_argv
from dlwh.collect.rundir import default_name, make_run_dir as _make_dir
from dlwh.collect.signals import SignalForwarder
from dlwh.collect.sources import SOURCE_NAMES, SOURCES, Source, SourceUnavailable
from dlwh.errors import DlwhError, UsageError

_resolve_program = resolve_program  # the name sweep.py and older callers use
__all__ = ["CollectOptions", "RunResult", "CommandNotFound", "SourceError", "SignalForwarder", "collect",
           "record", "check_sources", "available_sources", "parse_sources", "default_name", "make_run_dir"]

ENV_RUN_ID = "DLWH_RUN_ID"
Tags = dict[str, Union[str, int, float]]
Log = Callable[[str], None]


class SourceError(DlwhError):
    """A source named with --source cannot record here."""


@dataclass
class CollectOptions:
    """How to record. ``sources``: "auto" or names (nvml, nvidia-smi, perf, ipmi, powermetrics)."""

    out: Optional[Union[str, os.PathLike]] = None
    sources: Union[str, Sequence[str]] = "auto"
    interval_ms: int = 100
    intervals_ms: dict[str, int] = field(default_factory=dict)  # per-source overrides
    tags: Tags = field(default_factory=dict)
    layers: bool = False  # DLWH_LAYER_SPANS=1 for the workload
    save_output: bool = False  # tee the workload's stdout/stderr to stdout.log/stderr.log
    gpus: Optional[list[int]] = None  # NVML: only these GPU indices
    traces_dir: Union[str, os.PathLike] = "traces"
    name: Optional[str] = None  # run name (default: from the command)
    grace_s: float = 10.0  # after SIGTERM/SIGHUP, SIGKILL the workload this much later
    redact: bool = True  # secrets in the command line become *** in run.json (dlwh.collect.redact)
    quiet: bool = False
    log: Optional[Log] = None


@dataclass
class RunResult:
    """What one recorded run left: its directory, id, exit code and manifest."""

    run_dir: Path
    run_id: str
    exit_code: Optional[int]  # negative: killed by that signal
    manifest: dict[str, Any]
    sources: list[str]
    unavailable: list[dict[str, str]]
    interrupted: bool = False
    signum: Optional[int] = None  # the first signal the collector received, if any

    @property
    def shell_exit_code(self) -> int:
        """The exit status a shell would report (128 + signal for a killed command)."""
        if self.exit_code is None:  # interrupted before the command started
            return 128 + self.signum if self.signum else 1
        return 128 - self.exit_code if self.exit_code < 0 else self.exit_code


# -- source selection -----------------------------------------------------------------------------
def parse_sources(spec: Union[str, Sequence[str]]) -> tuple[list[str], bool]:
    """(source names, named explicitly?) from "auto" or "nvml,perf" or a list."""
    if isinstance(spec, str):
        items = [s.strip() for s in spec.split(",") if s.strip()]
    else:
        items = [s.strip() for s in spec]
    if not items or items == ["auto"]:
        return list(SOURCE_NAMES), False
    bad = [s for s in items if s not in SOURCES]
    if bad or "auto" in items:
        what = bad[0] if bad else "auto"
        raise UsageError(f"unknown source {what!r} in --source; use auto or any of "
                         + ",".join(SOURCE_NAMES))
    return list(dict.fromkeys(items)), True


def check_sources(opts: CollectOptions, env: dict[str, str]) -> tuple[list[Source], list[dict[str, str]]]:
    """Check each requested source. Explicit ones that fail raise SourceError; auto ones are
    returned as ``{name, reason, fix}``."""
    if opts.interval_ms < 1:
        raise UsageError("--interval-ms must be at least 1")
    names, explicit = parse_sources(opts.sources)
    ok: list[Source] = []
    unavailable: list[dict[str, str]] = []
    for name in names:
        cls = SOURCES[name]
        interval, note = cls.choose_interval(opts.interval_ms, opts.intervals_ms.get(name))
        src = cls.build(interval, env, gpus=opts.gpus)
        try:
            src.check()
        except SourceUnavailable as err:
            if explicit:
                release(ok)
                raise SourceError(f"source {name} is unavailable: {err.reason}; {err.fix}") from None
            unavailable.append({"name": name, "reason": err.reason, "fix": err.fix})
            continue
        if note:
            src.note(note)
        ok.append(src)
    return ok, unavailable


def release(srcs: Sequence[Source]) -> None:
    """Give back what checked but never started sources hold (an NVML session)."""
    for s in srcs:
        s.release()


_close_sessions = release


def available_sources(interval_ms: int = 100) -> tuple[list[str], list[dict[str, str]]]:
    """Which sources could record here: (names, [{name, reason, fix}])."""
    srcs, unavailable = check_sources(CollectOptions(interval_ms=interval_ms), dict(os.environ))
    release(srcs)
    return [s.name for s in srcs], unavailable


def make_run_dir(opts: CollectOptions, command: Sequence[str], utc_ns: int) -> Path:
    """Create the run directory (``--out`` or ``traces/<UTC>-<name>``); it must be new or empty."""
    return _make_dir(opts.out, opts.traces_dir, opts.name or default_name(command), utc_ns)


# -- one recording --------------------------------------------------------------------------------
def _stderr_log(msg: str) -> None:
    print(f"dlwh collect: {msg}", file=sys.stderr, flush=True)


class Recording:
    """The sources of one run and its manifest, from :meth:`open` to :meth:`close`."""

    def __init__(self, opts: CollectOptions, command: Sequence[str], env: dict[str, str]) -> None:
        self.opts = opts
        self.command = list(command)
        self.env = env
        self.log: Log = opts.log or (_noop if opts.quiet else _stderr_log)
        self.sources: list[Source] = []
        self.unavailable: list[dict[str, str]] = []
        self.run_dir: Optional[Path] = None
        self.run_id = ""
        self.anchor: Optional[Anchor] = None
        self.manifest: dict[str, Any] = {}
        self.tz_known = True

    def open(self) -> None:
        """Check sources, create the directory, start the sources, write run.json."""
        tz, self.tz_known = hostinfo.timezone_name()
        if not self.tz_known:
            self.env["TZ"] = "UTC"  # tools then print UTC, which the manifest says
        self.sources, self.unavailable = check_sources(self.opts, self.env)
        try:
            self.anchor = take_anchor()
            self.run_dir = make_run_dir(self.opts, self.command, self.anchor.utc_ns).resolve()
        except BaseException:
            release(self.sources)
            raise
        self.run_id = f"{self.run_dir.name}-{secrets.token_hex(3)}"
        if not self.tz_known:
            for src in self.sources:
                if src.uses_local_time:
                    src.note("host time zone unknown: the tool ran with TZ=UTC")
        gpus = self._gpus()
        started: list[Source] = []
        for src in self.sources:
            try:
                src.start(self.run_dir, self.anchor)
                started.append(src)
            except (OSError, SourceUnavailable) as err:
                self.unavailable.append({"name": src.name, "reason": f"failed to start: {err}",
                                         "fix": "see the reason"})
        self.sources = started
        tools = hostinfo.python_tools()
        for src in self.sources:
            tools.update(src.tools)
        command, hidden = redact_argv(self.command) if self.opts.redact else (self.command, 0)
        self.manifest = manifest.build(
            run_id=self.run_id, host=hostinfo.hostname(), anchor=self.anchor, timezone=tz,
            command=command, gpus=gpus, cpu_model=hostinfo.cpu_model(), tools=tools,
            sources=[s.entry() for s in self.sources],
            unavailable=[{"name": u["name"], "reason": f"{u['reason']}; fix: {u['fix']}"}
                         for u in self.unavailable],
            tags=dict(self.opts.tags))
        manifest.write(self.run_dir, self.manifest)
        self._announce()
        if hidden:
            self.log(f"{hidden} command-line value(s) that look like secrets are stored as *** in run.json "
                     "(--no-redact keeps them)")

    def _gpus(self) -> list[dict[str, Any]]:
        """The GPUs as the first source that can tell says, else as NVML says ([] without NVML)."""
        for src in self.sources:
            gpus = src.gpu_inventory()
            if gpus:
                return gpus
        return nvml.gpu_inventory()

    def _announce(self) -> None:
        used = ", ".join(f"{s.name} ({s.interval_ms} ms)" for s in self.sources) or "none"
        self.log(f"recording into {self.run_dir}")
        self.log(f"sources used: {used}")
        for u in self.unavailable:
            self.log(f"source {u['name']} unavailable: {u['reason']} (fix: {u['fix']})")
        if not self.sources:
            self.log("no source can record here; only spans and the manifest are written")

    def child_env(self) -> dict[str, str]:
        """The workload's environment: ours plus the run directory, id and anchor."""
        assert self.run_dir is not None and self.anchor is not None
        env = dict(self.env)
        if not self.tz_known:
            env.pop("TZ", None)
            if "TZ" in os.environ:
                env["TZ"] = os.environ["TZ"]
        env[spans.ENV_RUN_DIR] = str(self.run_dir)
        env[ENV_RUN_ID] = self.run_id
        env[ENV_ANCHOR] = self.anchor.to_env()
        if self.opts.layers:
            env[ENV_LAYER_SPANS] = "1"
        return env

    def close(self, exit_code: Optional[int]) -> None:
        """Stop the sources and rewrite run.json with the end time and exit code."""
        end_mono = time.monotonic_ns()
        for src in self.sources:
            try:
                src.stop()
            except Exception as err:  # noqa: BLE001 - finish the manifest whatever happens
                src.note(f"stopping failed: {type(err).__name__}: {err}")
        assert self.anchor is not None and self.run_dir is not None
        self.manifest["end_utc"] = iso_utc(self.anchor.utc_ns_of(end_mono))
        self.manifest["exit_code"] = exit_code
        self.manifest["sources"] = [s.entry() for s in self.sources]
        manifest.write(self.run_dir, self.manifest)


def _noop(msg: str) -> None:
    pass


# -- running a command ----------------------------------------------------------------------------
def collect(
    command: Sequence[str],
    options: Optional[CollectOptions] = None,
    *,
    forwarder: Optional[SignalForwarder] = None,
    **kw: Any,
) -> RunResult:
    """Run ``command`` while recording; return when it has ended and the run is complete.

    ``options`` (or the same fields as keyword arguments: ``out``, ``sources``, ``interval_ms``,
    ``tags``, ``layers``, ...) say how. Raises DlwhError (before anything runs) when the command
    does not exist or a source named explicitly cannot record here.
    """
    opts = options or CollectOptions(**kw)
    if options is not None and kw:
        raise TypeError("pass either options or keyword arguments, not both")
    env = dict(os.environ)
    resolve_program(command, env)
    rec = Recording(opts, command, env)
    own_forwarder = forwarder is None
    fw = forwarder or SignalForwarder(opts.grace_s)
    if own_forwarder:
        fw.install()
    exit_code: Optional[int] = None
    elapsed = 0.0
    child: Optional[subprocess.Popen[bytes]] = None
    try:
        rec.open()
        assert rec.run_dir is not None
        save_dir = rec.run_dir if opts.save_output else None
        if fw.interrupted:
            rec.log("interrupted before the command started")
        else:
            t_start = time.monotonic()
            try:
                child = popen(command, rec.child_env(), save_dir is not None)
            except OSError as err:
                rec.close(None)
                raise CommandNotFound(f"cannot run {command[0]!r}: {err.strerror or err}") from None
            fw.attach(child)
            tees = []
            if save_dir is not None:
                tees = [tee(child.stdout, save_dir / "stdout.log", sys.stdout.buffer),
                        tee(child.stderr, save_dir / "stderr.log", sys.stderr.buffer)]
            exit_code = child.wait()
            for t in tees:
                t.join(timeout=5)
            fw.attach(None)
            elapsed = time.monotonic() - t_start
        rec.close(exit_code)
    except BaseException:
        kill_group(child)
        if rec.run_dir is not None and rec.manifest and rec.manifest.get("end_utc") is None:
            with contextlib.suppress(Exception):
                rec.close(child.returncode if child is not None else None)
        raise
    finally:
        if own_forwarder:
            fw.restore()
    assert rec.run_dir is not None
    if exit_code is not None:
        how = f"exit code {exit_code}" if exit_code >= 0 else f"killed by signal {-exit_code}"
        rec.log(f"done: {rec.run_dir} ({how}, {elapsed:.2f} s)")
    return RunResult(run_dir=rec.run_dir, run_id=rec.run_id, exit_code=exit_code,
                     manifest=rec.manifest, sources=[s.name for s in rec.sources],
                     unavailable=rec.unavailable, interrupted=fw.interrupted, signum=fw.signum)


@contextlib.contextmanager
def record(
    options: Optional[CollectOptions] = None,
    *,
    command: Optional[Sequence[str]] = None,
    **kw: Any,
) -> Iterator[Recording]:
    """Record the enclosed block of this process: sources run, spans go to the run directory.

    ``with record(out="traces/x", tags={"model": "resnet18"}) as rec: train()``. The manifest's
    command is ``command`` (default ``sys.argv``) and its exit code 0, or 1 when the block raised
    (130 for KeyboardInterrupt). NVML sampling runs in a thread of this process here.
    """
    opts = options or CollectOptions(**kw)
    cmd = list(command) if command is not None else [sys.executable] + sys.argv
    rec = Recording(opts, cmd, dict(os.environ))
    rec.open()
    assert rec.run_dir is not None and rec.anchor is not None
    prev = spans.get_run_dir()
    spans.set_run_dir(rec.run_dir, rec.anchor)
    code = 0
    try:
        yield rec
    except KeyboardInterrupt:
        code = 130
        raise
    except BaseException:
        code = 1
        raise
    finally:
        spans.set_run_dir(prev) if prev is not None else spans.set_run_dir(None)
        rec.close(code)
