"""`modelwatch variants compare`: two production variants' model quality over one window (an A/B
test), with intervals and whether the difference is significant. Reads the store; no Prefect."""

from __future__ import annotations

from typing import Annotated

import typer

from modelwatch.cli_common import StoreOption, emit_json, say


def register(app: typer.Typer) -> None:
    """Add the variants command group to the main app."""
    variants_app = typer.Typer(no_args_is_help=True,
                               help="Production variants (A/B tests): compare their model quality.")
    app.add_typer(variants_app, name="variants")
    variants_app.command("compare")(variants_compare_command)


def _number(value: float) -> str:
    return f"{value:.4g}"


def variants_compare_command(
    endpoint: Annotated[str, typer.Option(help="Registered endpoint whose variants are compared.")],
    metric: Annotated[str, typer.Option(
        help="Metric of the model's problem type, e.g. accuracy, f1, auc, rmse.")],
    start: Annotated[str, typer.Option(help="Window start, ISO-8601 (UTC if no zone).")],
    end: Annotated[str, typer.Option(help="Window end (exclusive), ISO-8601.")],
    variants: Annotated[tuple[str, str] | None, typer.Option(
        help="CONTROL TREATMENT; the difference is treatment minus control \\[default: the "
             "window's two variants, in name order].")] = None,
    model: Annotated[str | None, typer.Option(
        help="Model of a multi-model endpoint \\[default: the endpoint's model].")] = None,
    confidence: Annotated[float, typer.Option(
        help="Confidence level of the intervals; significant when p < 1 - confidence.")] = 0.95,
    threshold: Annotated[float | None, typer.Option(
        help="Score threshold of a binary model that outputs scores only \\[default: the "
             "baseline's, else 0.5].")] = None,
    store: StoreOption = None,
) -> None:
    """Compare two variants' metric on the same window of merged records (run `groundtruth merge`
    first) and print the comparison as JSON; a line for people says whether the difference is
    significant."""
    from modelwatch.api import compare_variants

    result = compare_variants(endpoint, metric, start, end, variants=variants, model=model,
                              confidence=confidence, threshold=threshold, store=store)
    emit_json(result)
    a, b = result["control"], result["treatment"]
    level = f"{result['confidence']:.0%}"
    for side in (a, b):
        say(f"{side['variant']}: {metric} {_number(side['value'])} ({level} interval "
            f"{_number(side['ci_low'])} to {_number(side['ci_high'])}), {side['records']} records")
    verdict = (f"significant: {result['better']} is better" if result["significant"]
               else "not significant")
    say(f"{b['variant']} - {a['variant']}: {_number(result['difference'])} ({level} interval "
        f"{_number(result['ci_low'])} to {_number(result['ci_high'])}), p = "
        f"{result['p_value']:.3g}: {verdict}")
    for note in result.get("notes", []):
        say(f"note: {note}")
