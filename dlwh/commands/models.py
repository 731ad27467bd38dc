"""CLI commands for the model zoo: ``dlwh models list | profile | import``."""

from __future__ import annotations

from typing import Optional

import typer

from dlwh.commands._common import DbOption, db_arg, friendly_errors

models_app = typer.Typer(
    name="models",
    help="The model zoo and its MAC/parameter counts (list, profile with fvcore, import your own).",
    no_args_is_help=True,
)


@models_app.command("list")
@friendly_errors
def list_models_cmd() -> None:
    """List the zoo: kind, default input, parameters and MACs per sample (from the shipped table)."""
    from dlwh.models import format_macs, list_models, read_zoo_table

    counts = {(r.model, r.input_desc): r for r in read_zoo_table()}
    header = f"{'name':<20} {'kind':<7} {'input':<10} {'params':>12} {'MACs/sample':>12}"
    typer.echo(header)
    versions = set()
    for spec in list_models():
        row = counts.get((spec.name, spec.default_input_desc))
        params = f"{row.params:,}" if row else "-"
        macs = format_macs(row.macs_per_sample) if row else "-"
        if row:
            versions.add(row.fvcore_version)
        typer.echo(f"{spec.name:<20} {spec.kind:<7} {spec.default_input_desc:<10} {params:>12} {macs:>12}")
    typer.echo(f"\nMACs per sample at the default input, counted by fvcore {', '.join(sorted(versions))}; "
               "'dlwh models profile NAME' counts other inputs and batch sizes.")


@models_app.command("profile")
@friendly_errors
def profile_cmd(
    name: str = typer.Argument(..., help="Zoo model (e.g. resnet50, bert_base; aliases like ResNet-50 work)."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="Batch size of the counted forward pass."),
    input_shape: Optional[str] = typer.Option(
        None, "--input", help="Image input CxHxW, e.g. 3x224x224 (image models; default: the zoo's)."
    ),
    seq_len: Optional[int] = typer.Option(None, "--seq-len", help="Tokens per sample (text models; default 128)."),
    top: int = typer.Option(10, "--top", help="How many layers to show, most MACs first."),
    db: Optional[str] = DbOption,
) -> None:
    """Count MACs and parameters with fvcore, print the breakdown and store it in the warehouse."""
    from dlwh.errors import UsageError
    from dlwh.models import MAC_OPERATORS, format_macs, profile, store_profile
    from dlwh.models.complexity import check_profile_args
    from dlwh.warehouse import resolve_db_path, warehouse

    # wrong names and inputs fail before anything slow or any file is touched
    spec, _ = check_profile_args(name, batch_size, input_shape, seq_len)
    if top < 0:
        raise UsageError(f"--top must be 0 or more, not {top}")
    with warehouse(db_arg(db)) as con:
        p = profile(spec.name, batch_size=batch_size, input_shape=input_shape, seq_len=seq_len)
        store_profile(con, p)

    echo = typer.echo
    echo(f"{p.model} at input {p.input_desc}, batch size {p.batch_size} (fvcore {p.fvcore_version})")
    echo(f"  {format_macs(p.macs_per_sample)} MACs per sample ({p.macs_per_sample:,})")
    echo(f"  {format_macs(p.macs_total)} MACs for the batch of {p.batch_size} ({p.macs_total:,})")
    echo(f"  {p.params:,} parameters")
    echo(f"  fvcore's whole count, norms and pooling included: {format_macs(p.fvcore_flops_per_sample)} per sample")
    echo("\nBy operator (per sample):")
    for op, count in p.by_operator.items():
        if op in MAC_OPERATORS:
            share = 100.0 * count / p.macs_per_sample if p.macs_per_sample else 0.0
            echo(f"  {op:<22} {format_macs(count):>9}  {share:5.1f}% of MACs")
        else:
            echo(f"  {op:<22} {format_macs(count):>9}  (not a MAC operator; not in the MACs)")
    if top:
        layers = p.top_layers(top)
        width = max([len(r.layer) for r in layers] + [5])
        echo(f"\nTop {len(layers)} layers by MACs (per sample):")
        echo(f"  {'layer':<{width}}  {'type':<18} {'MACs':>9} {'params':>12}")
        for r in layers:
            echo(f"  {r.layer:<{width}}  {r.layer_type:<18} {format_macs(r.macs):>9} {r.params:>12,}")
    if p.unsupported_ops:
        ops = ", ".join(f"{op} x{n}" for op, n in p.unsupported_ops.items())
        echo(f"\nUnsupported operators (fvcore counted nothing for them): {ops}")
    else:
        echo("\nUnsupported operators: none")
    echo(f"\nStored in {resolve_db_path(db)} (model_complexity, model_ops, model_layers).")


@models_app.command("import")
@friendly_errors
def import_cmd(
    file: str = typer.Argument(..., help="CSV with columns name, input, macs (per sample), params."),
    db: Optional[str] = DbOption,
) -> None:
    """Import MAC and parameter counts of your own architectures (idempotent)."""
    from dlwh.models import import_complexity_csv
    from dlwh.models.importer import read_import_csv
    from dlwh.warehouse import resolve_db_path, warehouse

    read_import_csv(file)  # validate before touching the warehouse
    with warehouse(db_arg(db)) as con:
        result = import_complexity_csv(con, file)
    typer.echo(
        f"imported {result.rows} row{'s' if result.rows != 1 else ''} from {file} into {resolve_db_path(db)} "
        f"({result.new} new, {result.updated} updated, {result.unchanged} unchanged)"
    )


def register(app: typer.Typer) -> None:
    """Add the ``models`` sub-app to ``app``."""
    app.add_typer(models_app, name="models")
