"""`dlwh carbon ...`: grid carbon intensity (fetch, settings, lookup), emissions of runs and spans,
and the lowest-carbon start for a job. Naive times on the command line are UTC."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Optional

import typer

from dlwh.commands._common import DbOption, friendly_errors
from dlwh.errors import UsageError
from dlwh.timeparse import parse_duration, parse_time_option

carbon_app = typer.Typer(
    name="carbon", no_args_is_help=True, add_completion=False,
    help="Carbon intensity (gCO2eq/kWh) by zone and time, and the emissions of runs and spans.")


def parse_time(text: Optional[str], option: str) -> Optional[datetime]:
    """An ISO 8601 time (naive = UTC) → naive UTC datetime; None stays None (dlwh.timeparse)."""
    return None if text is None else parse_time_option(text, option)


def _print(frame, csv: bool, json: bool) -> None:
    from dlwh.warehouse.query import format_frame

    if csv and json:
        raise UsageError("choose one of --csv and --json")
    typer.echo(format_frame(frame, "csv" if csv else "json" if json else "table"))


@carbon_app.command("fetch")
@friendly_errors
def fetch_cmd(
    zone: str = typer.Option(..., "--zone", help="Electricity Maps zone key, e.g. DE, KR, US-CAL-CISO."),
    start: Optional[str] = typer.Option(None, "--start", help="Start of a past range (ISO time, UTC); "
                                        "without it: the last 24 hours and the latest value."),
    end: Optional[str] = typer.Option(None, "--end", help="End of the range (default now)."),
    forecast: bool = typer.Option(False, "--forecast", help="Also fetch the forecast (for `carbon schedule`)."),
    token: Optional[str] = typer.Option(None, "--token", show_default=False,
                                        help="API token (discouraged: it shows in ps and your shell history; "
                                             "prefer $ELECTRICITYMAPS_TOKEN or --token-file). Never stored."),
    token_file: Optional[str] = typer.Option(None, "--token-file", show_default=False,
                                             help="File holding the API token (chmod 600)."),
    api_url: Optional[str] = typer.Option(None, "--api-url", envvar="ELECTRICITYMAPS_API_URL",
                                          help="API base URL (default https://api.electricitymaps.com/v3)."),
    allow_http: bool = typer.Option(False, "--allow-http",
                                    help="Accept a plain http:// API URL (the token then travels unencrypted)."),
    timeout: float = typer.Option(20.0, "--timeout", help="Seconds to wait for each answer."),
    retries: int = typer.Option(3, "--retries", min=0,
                                help="Retries after HTTP 429/5xx or a failed connection (backoff 0.5, 1, 2 s...)."),
    db: Optional[str] = DbOption,
) -> None:
    """Fetch carbon intensity from the Electricity Maps v3 API into the warehouse."""
    from dlwh.carbon.electricitymaps import fetch, make_client
    from dlwh.warehouse import warehouse

    if timeout <= 0:
        raise UsageError("--timeout must be positive")
    if token is not None and token_file is not None:
        raise UsageError("give the token once: --token or --token-file")
    if token is not None:
        typer.echo("warning: --token shows the token to other users (ps) and keeps it in your shell history; "
                   "set ELECTRICITYMAPS_TOKEN or use --token-file instead", err=True)
    lo, hi = parse_time(start, "--start"), parse_time(end, "--end")
    client = make_client(token=token, token_file=token_file, base_url=api_url, timeout_s=timeout,
                         allow_http=allow_http, retries=retries)  # checked before the warehouse is opened
    with warehouse(db) as con:
        result = fetch(con, zone, start=lo, end=hi, forecast=forecast, client=client)
    if result.rows:
        typer.echo(f"{result.zone}: {result.rows} intensity values stored, {result.first_ts:%Y-%m-%d %H:%M}.."
                   f"{result.last_ts:%Y-%m-%d %H:%M} UTC ({', '.join(result.endpoints)})")
    else:
        typer.echo(f"{result.zone}: Electricity Maps had no values for this range ({', '.join(result.endpoints)})")


@carbon_app.command("set")
@friendly_errors
def set_cmd(
    key: str = typer.Argument(..., help="pue, zone, intensity_g_per_kwh or intensity_max_age_h."),
    value: str = typer.Argument(..., help="The value (e.g. 1.2, DE, 450, 3)."),
    db: Optional[str] = DbOption,
) -> None:
    """Store a warehouse-wide carbon setting (run tags zone/pue/intensity_g_per_kwh take precedence)."""
    from dlwh.carbon.settings import set_setting
    from dlwh.warehouse import warehouse

    with warehouse(db) as con:
        set_setting(con, key, value)
    typer.echo(f"{key} set")


@carbon_app.command("unset")
@friendly_errors
def unset_cmd(key: str = typer.Argument(..., help="The setting to remove."), db: Optional[str] = DbOption) -> None:
    """Remove a carbon setting (its default applies again)."""
    from dlwh.carbon.settings import set_setting
    from dlwh.warehouse import warehouse

    with warehouse(db) as con:
        set_setting(con, key, None)
    typer.echo(f"{key} removed")


@carbon_app.command("settings")
@friendly_errors
def settings_cmd(db: Optional[str] = DbOption) -> None:
    """Show the carbon settings and what each means."""
    from dlwh.carbon.settings import KNOWN, all_settings
    from dlwh.warehouse import warehouse

    with warehouse(db, read_only=True) as con:
        stored = all_settings(con)
    for key, meaning in KNOWN.items():
        typer.echo(f"{key:<22} {stored.get(key, '(not set)'):<12} {meaning}")


@carbon_app.command("intensity")
@friendly_errors
def intensity_cmd(
    zone: Optional[str] = typer.Option(None, "--zone", help="Zone key (default: the setting 'zone')."),
    at: Optional[str] = typer.Option(None, "--at", help="Time (ISO, UTC; default now)."),
    intensity: Optional[float] = typer.Option(None, "--intensity", help="A constant gCO2eq/kWh (wins)."),
    db: Optional[str] = DbOption,
) -> None:
    """Show the carbon intensity that applies to a zone at a time, and where it comes from."""
    from dlwh.carbon.intensity import resolve_intensity
    from dlwh.warehouse import warehouse

    with warehouse(db, read_only=True) as con:
        value, source = resolve_intensity(con, zone, intensity, parse_time(at, "--at"))
    typer.echo(f"{value:g} gCO2eq/kWh  ({source})")


@carbon_app.command("zones")
@friendly_errors
def zones_cmd(csv: bool = typer.Option(False, "--csv", help="Print CSV with the full references.")) -> None:
    """List the shipped yearly average intensities (used without API data)."""
    import pandas as pd

    from dlwh.carbon.intensity import yearly_averages

    frame = pd.DataFrame(list(yearly_averages()))
    if not csv:
        frame = frame.drop(columns=["reference"])
    _print(frame, csv, False)


@carbon_app.command("emissions")
@friendly_errors
def emissions_cmd(
    run: Optional[str] = typer.Option(None, "--run", help="Only this run."),
    spans: bool = typer.Option(False, "--spans", help="Per span instead of per run."),
    kind: Optional[str] = typer.Option(None, "--kind", help="With --spans: only spans of this kind (epoch, step...)."),
    per_sensor: bool = typer.Option(False, "--per-sensor", help="One row per power series instead of sums."),
    zone: Optional[str] = typer.Option(None, "--zone", help="Zone for every run (default: tag 'zone' / setting)."),
    intensity: Optional[float] = typer.Option(None, "--intensity", help="Constant gCO2eq/kWh for every run."),
    pue: Optional[float] = typer.Option(None, "--pue", help="PUE for every run (default: tag 'pue' / setting / 1.0)."),
    csv: bool = typer.Option(False, "--csv", help="Print CSV."),
    json: bool = typer.Option(False, "--json", help="Print JSON records."),
    db: Optional[str] = DbOption,
) -> None:
    """Energy (kWh) and emissions (gCO2eq) per run or span, with the intensity source."""
    from dlwh.carbon.emissions import run_emissions, span_emissions
    from dlwh.warehouse import warehouse

    if kind and not spans:
        raise UsageError("--kind needs --spans")
    with warehouse(db, read_only=True) as con:
        if spans:
            frame = span_emissions(con, zone=zone, intensity_g_per_kwh=intensity, pue=pue, run_id=run,
                                   kind=kind, per_sensor=per_sensor)
        else:
            frame = run_emissions(con, zone=zone, intensity_g_per_kwh=intensity, pue=pue, run_id=run,
                                  per_sensor=per_sensor)
    if frame.empty:
        raise UsageError("no power readings for " + (f"run {run!r}" if run else "any run")
                         + " in the warehouse; ingest a run first (dlwh ingest PATH)")
    _print(frame, csv, json)


@carbon_app.command("schedule")
@friendly_errors
def schedule_cmd(
    zone: str = typer.Option(..., "--zone", help="Zone key, e.g. DE."),
    energy_kwh: float = typer.Option(..., "--energy-kwh", help="Energy of the job (IT energy, kWh)."),
    duration: str = typer.Option(..., "--duration", help="Length of the job: 2h, 90m, 3600s, 1:30:00."),
    start: str = typer.Option(..., "--start", help="Earliest start (ISO time, UTC)."),
    end: str = typer.Option(..., "--end", help="Latest end (ISO time, UTC)."),
    step: str = typer.Option("1h", "--step", help="Spacing of candidate starts."),
    pue: Optional[float] = typer.Option(None, "--pue", help="PUE (default: setting or 1.0)."),
    show_all: bool = typer.Option(False, "--all", help="Print every candidate start."),
    csv: bool = typer.Option(False, "--csv", help="Print the candidates as CSV."),
    db: Optional[str] = DbOption,
) -> None:
    """When, within a window, a job of known energy would emit least (from history or forecast)."""
    from dlwh.carbon.schedule import best_window
    from dlwh.warehouse import warehouse

    lo, hi = parse_time(start, "--start"), parse_time(end, "--end")
    with warehouse(db, read_only=True) as con:
        plan = best_window(con, zone, energy_kwh, parse_duration(duration, "--duration"), lo, hi,
                           timedelta(seconds=parse_duration(step, "--step")), pue=pue)
    if show_all or csv:
        _print(plan.candidates, csv, False)
        if csv:
            return
    b, w = plan.best, plan.worst
    typer.echo(f"best start {b['start_ts']:%Y-%m-%d %H:%M} UTC: {b['emissions_g']:.1f} gCO2eq "
               f"({b['avg_intensity_g_per_kwh']:.0f} gCO2eq/kWh, PUE {plan.pue:g})")
    typer.echo(f"worst start {w['start_ts']:%Y-%m-%d %H:%M} UTC: {w['emissions_g']:.1f} gCO2eq; "
               f"saving {plan.saving_g:.1f} g; basis: {plan.basis}")


def register(app: typer.Typer) -> None:
    """Add the `carbon` sub-app."""
    app.add_typer(carbon_app, name="carbon")
