"""`dlwh fit`, `predict`, `simulate`, `plot`, `report`: learn time, power and energy from the warehouse."""

from __future__ import annotations

from typing import Optional

import typer

from dlwh.commands._common import DbOption, friendly_errors
from dlwh.errors import UsageError

PLOT_KINDS = ("power", "macs", "limits", "pareto")


def _query_options(power_limits, gpu, model, macs, params, batch_size, dataset, optimizer, precision, gpus,
                   epochs, samples_per_epoch, algo):
    from dlwh.analysis.data import parse_limits
    from dlwh.analysis.predict import Query

    if model and macs is not None:
        raise UsageError("give --model NAME or --macs N --params N, not both")
    if macs is not None and params is None:
        raise UsageError("--macs needs --params too")
    for name, value in (("--batch-size", batch_size), ("--epochs", epochs), ("--samples-per-epoch", samples_per_epoch),
                        ("--macs", macs), ("--params", params), ("--gpus", gpus)):
        if value is not None and value <= 0:
            raise UsageError(f"{name} must be positive")
    return Query(power_limits=parse_limits(power_limits) if power_limits else [], gpu=gpu, model=model, macs=macs,
                 params=params, batch_size=batch_size, dataset=dataset, optimizer=optimizer, precision=precision,
                 n_gpus=gpus or 1, epochs=epochs, samples_per_epoch=samples_per_epoch, algo=algo)


def _warn(lines) -> None:
    for line in lines:
        typer.echo(f"warning: {line}", err=True)


def register(app: typer.Typer) -> None:
    """Add fit, predict, simulate, plot and report to the app."""

    @app.command("fit")
    @friendly_errors
    def fit(
        target: str = typer.Option("all", "--target", help="speed (time per epoch), power, energy or all."),
        algo: str = typer.Option("all", "--algo", help="gbr, poly, ols, physics or all."),
        gpu: Optional[str] = typer.Option(None, "--gpu", help="Fit this GPU only (default: each GPU in the data)."),
        cv: str = typer.Option("kfold", "--cv", help="Cross-validation: kfold, group-model (leave one model out) or "
                                                       "group-power-limit (leave one limit out)."),
        n_estimators: int = typer.Option(200, "--n-estimators", help="Trees of the gradient-boosting models."),
        summary: bool = typer.Option(False, "--summary", help="Print the OLS summaries (coefficients, intervals, R²)."),
        db: Optional[str] = DbOption,
    ) -> None:
        """Fit models of time, power and energy per epoch; print their cross-validated accuracy; store them."""
        from dlwh.analysis.fit import fit as run_fit
        from dlwh.analysis.fit import score_table
        from dlwh.warehouse import resolve_db_path, transaction, warehouse

        if n_estimators < 1:
            raise UsageError("--n-estimators must be at least 1")
        with warehouse(db) as con, transaction(con):  # models and scores stored together or not at all
            report = run_fit(con, target=target, algo=algo, gpu=gpu, cv=cv, n_estimators=n_estimators,
                             progress=lambda line: typer.echo(line, err=True), in_transaction=True)
        typer.echo(f"cross-validated accuracy ({cv}; MAPE of out-of-fold predictions, R² of log values):")
        typer.echo(score_table(report.scores).to_string(index=False))
        typer.echo("(in brackets: the same error when nothing changes, i.e. each row predicted by its configuration's "
                   "other runs; physics is scored by predicting new limits of a configuration from one run)")
        for gpu_name, p in report.physics.items():
            d = p["cap_offset_d_w"]
            typer.echo(f"{gpu_name} power-limit response ({p['kind']}): cap = {p['cap_slope_c']} x limit "
                       f"{'-' if d < 0 else '+'} {abs(d)} W, static power {p['static_power_w']} W, "
                       f"reference limit {p['reference_limit_w']:g} W")
        if summary or algo == "ols":
            for key, text in report.ols_summaries.items():
                typer.echo(f"\nOLS {key}\n{text}")
        _warn(report.notes)
        typer.echo(f"stored {report.stored} models in {resolve_db_path(db)}; use them with dlwh predict")

    @app.command("predict")
    @friendly_errors
    def predict_cmd(
        power_limit: str = typer.Option(..., "--power-limit", help="W: 200, a list 150,200,250 or a range 100:300:25."),
        model: Optional[str] = typer.Option(None, "--model", help="Model name (zoo names and aliases: resnet50, bert-base-uncased, ...)."),
        macs: Optional[float] = typer.Option(None, "--macs", help="MACs per sample, for a model the zoo lacks."),
        params: Optional[float] = typer.Option(None, "--params", help="Parameters, with --macs."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size."),
        gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU (default: the only one with fitted models)."),
        epochs: Optional[float] = typer.Option(None, "--epochs", help="Epochs, for totals."),
        samples_per_epoch: Optional[float] = typer.Option(None, "--samples-per-epoch", help="Samples per epoch, for throughput (default: from the training data)."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset (default: the model's in the training data)."),
        optimizer: Optional[str] = typer.Option(None, "--optimizer", help="Optimizer (default: the model's in the training data)."),
        precision: Optional[str] = typer.Option(None, "--precision", help="Precision tag, e.g. fp32, amp."),
        gpus: Optional[int] = typer.Option(None, "--gpus", help="GPUs per run (default 1)."),
        algo: str = typer.Option("auto", "--algo", help="auto (best cross-validated that can predict), gbr, poly, ols, physics."),
        csv: bool = typer.Option(False, "--csv", help="Print the raw table as CSV."),
        db: Optional[str] = DbOption,
    ) -> None:
        """Predict throughput, time per epoch, power and energy at power limits, with 90 % intervals."""
        from dlwh.analysis.predict import describe, predict, table_for_print
        from dlwh.warehouse import warehouse

        q = _query_options(power_limit, gpu, model, macs, params, batch_size, dataset, optimizer, precision, gpus,
                           epochs, samples_per_epoch, algo)
        with warehouse(db, read_only=True) as con:
            pred = predict(con, q)
        _warn(pred.warnings)
        for note in pred.notes:
            typer.echo(f"note: {note}", err=True)
        if csv:
            typer.echo(pred.table.to_csv(index=False).rstrip("\n"))
        elif len(pred.table) == 1:
            typer.echo(describe(pred, epochs))
        else:
            typer.echo(f"{pred.description}; models: {', '.join(sorted(set(pred.algo.values())))}; [90 % interval]")
            typer.echo(table_for_print(pred, epochs).to_string(index=False))

    @app.command("simulate")
    @friendly_errors
    def simulate_cmd(
        budget_epochs: Optional[float] = typer.Option(None, "--budget-epochs", help="Budget: the energy of N epochs at the reference limit (default 1)."),
        budget_kwh: Optional[float] = typer.Option(None, "--budget-kwh", help="Budget in kWh."),
        reference_limit: str = typer.Option("max", "--reference-limit", help="Reference limit in W, or max."),
        power_limits: Optional[str] = typer.Option(None, "--power-limits", help="Limits to try, e.g. 100:300:25 (default: the GPU's measured limits)."),
        model: Optional[str] = typer.Option(None, "--model", help="Model name."),
        macs: Optional[float] = typer.Option(None, "--macs", help="MACs per sample (instead of --model)."),
        params: Optional[float] = typer.Option(None, "--params", help="Parameters, with --macs."),
        batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size."),
        gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset (default: the model's in the training data)."),
        max_slowdown: Optional[float] = typer.Option(None, "--max-slowdown", help="Also name the least-energy limit that is at most this many % slower than the reference."),
        eta: float = typer.Option(0.5, "--eta", help="Weight of energy in the cost eta*energy + (1-eta)*max_power*time."),
        target_metric: Optional[float] = typer.Option(None, "--target-metric", help="Accuracy target for time-to-accuracy (default: the strictest most seeds reached)."),
        zone: Optional[str] = typer.Option(None, "--zone", help="Grid zone for emissions, e.g. DE."),
        intensity: Optional[float] = typer.Option(None, "--intensity", help="Carbon intensity, gCO2e/kWh."),
        pue: Optional[float] = typer.Option(None, "--pue", help="Data-centre PUE for emissions."),
        algo: str = typer.Option("auto", "--algo", help="auto, gbr, poly, ols, physics."),
        carbon: Optional[str] = typer.Option(None, "--carbon", help="Zone: say when, within --window-start/--window-end, the least-energy run would emit least (intensity history or forecast in the warehouse)."),
        window_start: Optional[str] = typer.Option(None, "--window-start", help="With --carbon: earliest start, ISO 8601 (naive = UTC)."),
        window_end: Optional[str] = typer.Option(None, "--window-end", help="With --carbon: the run must end by then, ISO 8601."),
        window_step_h: float = typer.Option(1.0, "--window-step-h", help="With --carbon: hours between candidate starts."),
        plot: str = typer.Option("simulation.png", "--plot", help="Write the plot here (.png or .svg)."),
        no_plot: bool = typer.Option(False, "--no-plot", help="Do not write the plot."),
        db: Optional[str] = DbOption,
    ) -> None:
        """How many epochs an energy budget trains at each power limit, how long, and the limits that minimise energy and cost."""
        from dlwh.analysis import plots
        from dlwh.analysis.simulate import simulate, summary_lines, table_for_print
        from dlwh.warehouse import warehouse

        if not no_plot:
            plots.check_out(plot)
        if carbon and not (window_start and window_end):
            raise UsageError("--carbon needs --window-start and --window-end (ISO 8601 times)")
        q = _query_options(power_limits, gpu, model, macs, params, batch_size, dataset, None, None, None,
                           None, None, algo)
        schedule = None
        with warehouse(db, read_only=True) as con:
            sim = simulate(con, q, budget_epochs=budget_epochs, budget_kwh=budget_kwh, reference_limit=reference_limit,
                           eta=eta, target_metric=target_metric, zone=zone, intensity=intensity, pue=pue,
                           max_slowdown_pct=max_slowdown)
            if carbon:
                from dlwh.analysis.carbon_window import parse_window_time, schedule_for_simulation

                schedule = schedule_for_simulation(
                    con, sim, carbon, parse_window_time(window_start, "--window-start"),
                    parse_window_time(window_end, "--window-end"), window_step_h)
        _warn(sim.prediction.warnings)
        for note in sim.notes:
            typer.echo(f"note: {note}", err=True)
        typer.echo(f"{sim.prediction.description}; models: {', '.join(sorted(set(sim.prediction.algo.values())))}")
        typer.echo(table_for_print(sim).to_string(index=False))
        for line in summary_lines(sim):
            typer.echo(line)
        if schedule is not None:
            limit, sch = schedule
            best, worst = sch.best, sch.worst
            typer.echo(f"carbon ({sch.zone}, {sch.basis}): the {limit:g} W run ({sch.energy_kwh:.4g} kWh, "
                       f"{sch.duration_s / 3600:.3g} h) emits least starting {best['start_ts']:%Y-%m-%d %H:%M} UTC: "
                       f"{best['emissions_g'] / 1000:.4g} kg CO2e, against {worst['emissions_g'] / 1000:.4g} kg "
                       f"starting {worst['start_ts']:%Y-%m-%d %H:%M} UTC ({sch.saving_g / 1000:.4g} kg saved)")
        if not no_plot:
            from dlwh.errors import DlwhError

            try:
                figure = plots.simulation(sim)
            except DlwhError as err:  # one limit: nothing to draw
                typer.echo(f"note: no plot: {err}", err=True)
            else:
                typer.echo(f"plot: {plots.save(figure, plot)}")

    @app.command("plot")
    @friendly_errors
    def plot_cmd(
        kind: str = typer.Argument(..., help="power (a run's power over time), macs (time and energy against MACs), "
                                             "limits (against the power limit), pareto (energy-time front)."),
        out: str = typer.Option(..., "--out", help="Output file, .png or .svg."),
        run: Optional[str] = typer.Option(None, "--run", help="Run id (power)."),
        gpu: Optional[str] = typer.Option(None, "--gpu", help="GPU (macs, limits, pareto)."),
        model: Optional[str] = typer.Option(None, "--model", help="Model (limits, pareto)."),
        dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset (pareto)."),
        db: Optional[str] = DbOption,
    ) -> None:
        """Draw a plot from the warehouse (matplotlib, PNG or SVG)."""
        from dlwh.analysis import plots
        from dlwh.warehouse import warehouse

        if kind not in PLOT_KINDS:
            raise UsageError(f"plot {kind!r}: choose one of {', '.join(PLOT_KINDS)}")
        plots.check_out(out)
        with warehouse(db, read_only=True) as con:
            if kind == "power":
                if not run:
                    raise UsageError("plot power needs --run RUN_ID")
                fig = plots.power_over_time(con, run)
            elif kind == "macs":
                fig = plots.energy_time_vs_macs(con, gpu)
            else:
                gpu = gpu or _only_gpu(con)
                if kind == "limits":
                    fig = plots.limit_curves(con, gpu, model)
                else:
                    if not model:
                        raise UsageError("plot pareto needs --model")
                    fig = plots.pareto(con, gpu, model, dataset)
            path = plots.save(fig, out)
        typer.echo(f"plot: {path}")

    @app.command("report")
    @friendly_errors
    def report_cmd(
        out: str = typer.Option("report.html", "--out", help="Output HTML file."),
        budget_epochs: float = typer.Option(100, "--budget-epochs", help="Budget of the simulations shown."),
        zone: Optional[str] = typer.Option(None, "--zone", help="Grid zone for emissions, e.g. DE (default: the stored setting)."),
        intensity: Optional[float] = typer.Option(None, "--intensity", help="Carbon intensity, gCO2e/kWh."),
        pue: Optional[float] = typer.Option(None, "--pue", help="Data-centre PUE for emissions."),
        db: Optional[str] = DbOption,
    ) -> None:
        """Write one self-contained HTML page with the warehouse's key tables and plots."""
        from dlwh.analysis import report
        from dlwh.warehouse import resolve_db_path, warehouse

        with warehouse(db, read_only=True) as con:
            path = report.write(con, str(resolve_db_path(db)), out, budget_epochs, zone, intensity, pue)
        typer.echo(f"report: {path}")


def _only_gpu(con) -> str:
    gpus = [r[0] for r in con.execute("SELECT DISTINCT gpu FROM training_data ORDER BY 1").fetchall()]
    if len(gpus) == 1:
        return gpus[0]
    if not gpus:
        raise UsageError("no training data; ingest runs or summaries first")
    raise UsageError(f"several GPUs in the data ({', '.join(gpus)}); pass --gpu")
