"""The `cardioseg` command line: one typer app, each subcommand a thin wrapper over the library.

Every command takes ``--config FILE`` (YAML) and ``--set section.key=value`` overrides, plus
flags for the options used most; all of them resolve into one ``Config``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from cardioseg.artifacts import PreparedFiles
from cardioseg.config import Config, load_config, parse_override
from cardioseg.errors import CardiosegError, ConfigError

app = typer.Typer(
    name="cardioseg",
    help="Cardiac image segmentation: prepare real data, train, evaluate, predict, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="YAML configuration file")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="override any setting: section.key=value (repeatable)")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars")]


def reports_errors(func: F) -> F:
    """Turn cardioseg's own errors into one red line and exit code 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except CardiosegError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # a full disk, a read-only folder, a vanished file: say which, no traceback
            where = f"{exc.filename}: " if exc.filename else ""
            err_console.print(f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err_console.print("[yellow]interrupted[/]: run the same command again to resume")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _named_models(value: Any) -> Any:
    """Model options take a file or the name of a ready-trained model (``models.zoo``)."""
    from cardioseg.errors import CardiosegError
    from cardioseg.models.zoo import resolve_model

    if value is None:
        return None
    try:
        return [resolve_model(v) for v in value] if isinstance(value, list) else resolve_model(value)
    except CardiosegError as exc:
        raise typer.BadParameter(str(exc)) from None


def _model_or_folder(value: Path) -> Path:
    """`plan show` takes folders too: a ready-trained model's name is resolved, anything else left as given."""
    from cardioseg.models.zoo import resolve_model

    return resolve_model(value, bare_names=False)


def resolve(config: Path | None, sets: list[str] | None, **flags: Any) -> Config:
    overrides = dict(parse_override(item) for item in sets or [])
    overrides.update({k: v for k, v in flags.items() if v is not None})
    return load_config(config, overrides)


@app.command()
@reports_errors
def init(directory: Annotated[Path, typer.Argument(help="folder to create")]) -> None:
    """Write a starter project: folders for images and masks and a commented configuration."""
    from cardioseg.project import init_project

    written = init_project(directory)
    console.print(f"Starter project in [bold]{directory}[/]: {', '.join(str(p.relative_to(directory)) for p in written)}")
    console.print(f"Next: drop images and masks in, then `cardioseg prepare -c {directory / 'cardioseg.yaml'}`")


@app.command()
@reports_errors
def prepare(
    source: Annotated[Path | None, typer.Option("--source", "-s", help="raw data folder")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="prepared dataset folder")] = None,
    layout: Annotated[str | None, typer.Option(help="auto, camus, camus_png, msd, sunnybrook, folders, labelme, coco or cvat")] = None,
    size: Annotated[int | None, typer.Option(help="square network input size in pixels")] = None,
    labels: Annotated[str | None, typer.Option(help="label mapping such as '1:1' (LV only) or '1:1,2:2,3:3'")] = None,
    skip_bad: Annotated[bool | None, typer.Option("--skip-bad/--no-skip-bad", help="leave bad files out and list them")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Read a dataset in any supported layout and write a prepared dataset with patient-level splits."""
    from cardioseg.data.prepare import prepare_dataset

    cfg = resolve(
        config, set_,
        **{"data.source": source, "data.prepared": out, "data.layout": layout, "data.skip_bad": skip_bad,
           "preprocess.size": (size, size) if size else None, "data.labels": parse_label_map(labels)},
    )
    result = prepare_dataset(cfg, progress=not quiet)
    console.print(
        f"Prepared {result.n_cases} cases -> {result.n_samples} samples in [bold]{result.out_dir}[/] "
        f"(train {result.split_counts['train']}, val {result.split_counts['val']}, test {result.split_counts['test']})"
    )
    if result.bad_files:
        console.print(f"[yellow]{len(result.bad_files)} bad file(s) left out[/]; see {PreparedFiles(result.out_dir).bad_files}")
    for note in result.warnings:
        console.print(f"[yellow]warning:[/] {note}", highlight=False)


def parse_label_map(text: str | None) -> dict[int, int] | None:
    if not text:
        return None
    try:
        return {int(a): int(b) for a, b in (pair.split(":") for pair in text.split(","))}
    except ValueError:
        raise CardiosegError(f"--labels {text!r}: use source:class pairs such as 1:1,2:2") from None


@app.command()
@reports_errors
def inspect(
    prepared: Annotated[Path, typer.Argument(help="prepared dataset folder")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="where to write the overlay grid PNG")] = None,
) -> None:
    """Counts per split, image sizes, label distribution, spacing, a PNG grid of overlays, and a figure of what
    each preprocessing step does (e.g. CLAHE before and after)."""
    from cardioseg.report.inspect import inspect_dataset

    summary = inspect_dataset(prepared, out)
    table = Table(title=f"{prepared} ({summary['layout']})")
    for column in ("split", "patients", "samples", "foreground %"):
        table.add_column(column, justify="right")
    for row in summary["splits"]:
        table.add_row(row["split"], str(row["patients"]), str(row["samples"]), f"{row['foreground_pct']:.2f}")
    console.print(table)
    console.print(f"original sizes: {summary['original_sizes']}")
    console.print(f"spacing: {summary['spacing']}")
    console.print(f"label pixels: {summary['label_fractions']}")
    console.print(f"overlay grid: [bold]{summary['grid']}[/]")
    console.print(f"preprocessing steps: [bold]{summary['steps']}[/]")


@app.command()
@reports_errors
def augment(
    prepared: Annotated[Path, typer.Argument(help="prepared dataset folder")],
    out: Annotated[Path, typer.Option("--out", "-o", help="new prepared dataset folder")],
    copies: Annotated[int, typer.Option(help="augmented copies of every training sample")] = 10,
    seed: Annotated[int, typer.Option(help="random seed of the transforms")] = 0,
) -> None:
    """Offline augmentation: a new prepared dataset whose training split holds N extra transformed copies."""
    from cardioseg.data.offline_augment import augment_offline
    from cardioseg.data.prepared import PreparedDataset

    result = PreparedDataset(augment_offline(prepared, out, copies=copies, seed=seed))
    console.print(f"Wrote [bold]{out}[/]: {len(result.indices('train'))} training samples "
                  f"({copies} augmented copies each), val and test unchanged")


@app.command()
@reports_errors
def train(
    prepared: Annotated[Path | None, typer.Option("--data", "-d", help="prepared dataset folder")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", "-r", help="output folder (resumes if it holds a run)")] = None,
    arch: Annotated[str | None, typer.Option(help="architecture from the registry (see `cardioseg models`)")] = None,
    encoder: Annotated[str | None, typer.Option(help="encoder for smp architectures, e.g. resnet18")] = None,
    encoder_weights: Annotated[str | None, typer.Option(help="imagenet, or a local weights file")] = None,
    epochs: Annotated[int | None, typer.Option(help="maximum epochs")] = None,
    more_epochs: Annotated[int | None, typer.Option("--more-epochs", help="train a finished run N epochs further")] = None,
    batch_size: Annotated[int | None, typer.Option(help="batch size")] = None,
    lr: Annotated[float | None, typer.Option(help="peak learning rate")] = None,
    loss: Annotated[str | None, typer.Option(help="bce, dice, dice_bce, dice_ce or focal")] = None,
    augment: Annotated[str | None, typer.Option(help="augmentation preset: none, light, echo or strong")] = None,
    time_budget: Annotated[str | None, typer.Option("--time-budget", help="wall-clock limit, e.g. 5m")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, bf16 or 32")] = None,
    devices: Annotated[int | None, typer.Option(help="processes per node (DDP when > 1)")] = None,
    num_nodes: Annotated[int | None, typer.Option(help="number of nodes")] = None,
    deterministic: Annotated[bool | None, typer.Option("--deterministic/--no-deterministic")] = None,
    plan: Annotated[bool, typer.Option("--plan/--no-plan", help="fill every setting not given from the recipe "
                                       "planned for this dataset and budget (`cardioseg plan make --explain` shows "
                                       "it); --no-plan keeps the configuration's own defaults")] = True,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Train a model on a prepared dataset; the same command again resumes an interrupted run and leaves a finished one alone.

    By default the recipe (network, input size and crop, batch, learning rate, epochs, augmentation, precision)
    is planned from the data and the time budget (10 minutes when none is given); every flag still overrides it."""
    from cardioseg.training.run import train as run_training

    cfg = resolve(
        config, set_,
        **{"data.prepared": prepared, "train.run_dir": run_dir, "model.arch": arch, "model.encoder": encoder,
           "model.encoder_weights": encoder_weights, "train.epochs": epochs, "train.more_epochs": more_epochs, "train.batch_size": batch_size,
           "train.lr": lr, "train.loss": loss, "train.augment.preset": augment, "train.time_budget": time_budget,
           "train.seed": seed, "train.precision": precision, "train.devices": devices, "train.num_nodes": num_nodes,
           "train.deterministic": deterministic},
    )
    if plan and "plan" not in cfg.train.model_fields_set:
        cfg.train.plan = True
    elif not plan:
        cfg.train.plan = False
    result = run_training(cfg, progress=not quiet)
    if cfg.train.plan and result.writes_model:
        _choose_postprocess(result.model_path, cfg.data.prepared, quiet)
    if result.already_finished:
        dice = f", best validation Dice {result.best_val_dice:.4f}" if result.best_val_dice is not None else ""
        console.print(
            f"{result.run_dir} is a finished run ({result.epochs_run} epoch(s){dice}); nothing to do. "
            f"Model: [bold]{result.model_path}[/]. To train it further: `cardioseg train -r {result.run_dir} "
            "--more-epochs N`; to start afresh, give a new --run-dir.", soft_wrap=True
        )
    elif result.best_val_dice is not None:
        console.print(
            f"Trained {result.arch} for {result.epochs_run} epoch(s) in {result.train_seconds:.0f}s ({result.precision}); "
            f"best validation Dice {result.best_val_dice:.4f}; model: [bold]{result.model_path}[/]"
        )
    if result.skipped_steps:
        console.print(f"[yellow]{result.skipped_steps} optimiser step(s) skipped: their gradient was not finite[/]")


def _choose_postprocess(model: Path, prepared: Path, quiet: bool) -> None:
    """A planned run's last step: the post-processing its validation split favours goes into the model's plan."""
    from cardioseg.evaluation.postprocess_choice import choose_once
    from cardioseg.plan import describe_postprocess

    choice = choose_once(model, prepared)
    if choice is not None and not quiet:
        tried = "; ".join(f"{t['step']} {float(t['gain']):+.4f}" + (" (kept)" if t["kept"] else "") for t in choice.trials)
        console.print(f"Post-processing chosen on {choice.n_cases} {choice.split} case(s): "
                      f"{describe_postprocess(choice.chosen)} (mean Dice {choice.baseline_dice:.4f} without; {tried})",
                      soft_wrap=True)


@app.command()
@reports_errors
def evaluate(
    model: Annotated[list[Path], typer.Option("--model", "-m", callback=_named_models, help="ready-trained model name (`models --pretrained`) or model file (.safetensors, or .onnx from `cardioseg export`); repeat for an ensemble")],
    data: Annotated[Path, typer.Option("--data", "-d", help="prepared dataset, or a raw folder in a supported layout")],
    split: Annotated[str | None, typer.Option(help="train, val, test or all")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output folder")] = None,
    backend: Annotated[str | None, typer.Option(help="auto, torch, onnx or openvino, as for predict")] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="average over left-right and up-down flips")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, 32, bf16 or int8, as for predict")] = None,
    overwrite: Annotated[bool | None, typer.Option("--overwrite/--no-overwrite", help="replace an earlier evaluation in the output folder")] = None,
    skip_bad: Annotated[bool | None, typer.Option("--skip-bad/--no-skip-bad", help="raw folder: leave bad files out and list them")] = None,
    every_case: Annotated[bool | None, typer.Option("--every-case/--no-every-case", help="also draw every case: an overlay of each image (each slice of a volume) and a 3D view of each volume")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Score what predict ships, the way a paper would: per case, per class, at the original resolution."""
    from cardioseg.evaluation.clinical_outputs import clinical_summary_lines
    from cardioseg.evaluation.evaluate import evaluate_model, summary_table

    cfg = resolve(config, set_, **{"evaluate.out_dir": out, "evaluate.split": split, "evaluate.backend": backend,
                                   "evaluate.tta": tta, "evaluate.precision": precision,
                                   "evaluate.overwrite": overwrite, "data.skip_bad": skip_bad,
                                   "evaluate.every_case": every_case})
    result = evaluate_model(model, data, cfg, progress=not quiet)
    console.print(summary_table(result))
    for line in clinical_summary_lines(result.summary.get("clinical") or {}):
        console.print(line, highlight=False, soft_wrap=True)
    if drawn := result.summary.get("every_case"):
        console.print(f"Every case: {drawn['overlays']} overlays in {result.out_dir / 'overlays'}, "
                      f"{drawn['views']} 3D views (volume3d_*.html)")
    console.print(f"Per-case metrics, summary and figures in [bold]{result.out_dir}[/]")


@app.command()
@reports_errors
def compare(
    model: Annotated[list[Path], typer.Option("--model", "-m", callback=_named_models, help="ready-trained model name (`models --pretrained`) or model file; repeat, one per column")],
    data: Annotated[Path, typer.Option("--data", "-d", help="prepared dataset")],
    out: Annotated[Path, typer.Option("--out", "-o", help="PNG to write")] = Path("compare.png"),
    name: Annotated[list[str] | None, typer.Option("--name", help="column title per model (default: its run folder)")] = None,
    cases: Annotated[int, typer.Option(min=1, help="how many cases, drawn at random")] = 6,
    seed: Annotated[int, typer.Option(help="which random cases: the same seed draws the same ones")] = 0,
    split: Annotated[str | None, typer.Option(help="train, val, test or all")] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace an existing figure")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """The same random cases across several models: image, reference, and each model's masks, with Dice."""
    from cardioseg.evaluation.compare import compare_models

    cfg = resolve(config, set_, **{"evaluate.split": split})
    if out.exists() and not overwrite:
        raise ConfigError("exists already: pass --overwrite to replace it", out)
    result = compare_models(model, data, cfg, out, cases, seed, name)
    table = Table(title=f"post-processed Dice on {len(result.dice)} {cfg.evaluate.split} cases (seed {seed})")
    table.add_column("case")
    for column in result.dice.columns:
        table.add_column(str(column), justify="right")
    for case, row in result.dice.iterrows():
        table.add_row(str(case), *(f"{v:.3f}" for v in row))
    table.add_row("mean", *(f"{v:.3f}" for v in result.dice.mean()), style="bold")
    console.print(table)
    console.print(f"figure: [bold]{result.figure}[/]")


plan_app = typer.Typer(help="The plan: what a model expects of its input and says of its output.", no_args_is_help=True)
app.add_typer(plan_app, name="plan")


@plan_app.command("make")
@reports_errors
def plan_make(
    prepared: Annotated[Path, typer.Argument(help="prepared dataset folder")],
    time_budget: Annotated[str, typer.Option("--time-budget", help="wall-clock training budget, e.g. 5m")] = "10m",
    explain: Annotated[bool, typer.Option("--explain", help="print each choice and why")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="replace the recipe planned before")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Plan the training recipe from the dataset's fingerprint, the budget and speeds measured on this machine.

    Writes PREPARED/recipe.json, which `cardioseg train --time-budget` (same budget) follows; settings given
    with --set (model.arch, train.batch_size, preprocess.size, ...) are planned around."""
    from cardioseg.artifacts import PreparedFiles
    from cardioseg.planning.apply import plan_for, write_recipe

    cfg = resolve(config, set_, **{"data.prepared": prepared, "train.time_budget": time_budget})
    target = PreparedFiles(prepared).recipe
    if target.exists() and not overwrite:
        raise ConfigError("a recipe was planned here already: pass --overwrite to plan again", target)
    with console.status("measuring training speed on this machine and planning..."):
        recipe = plan_for(cfg)
    write_recipe(recipe, target)
    table = Table(title=f"recipe for {prepared} in {recipe.budget_s:g} s on {recipe.machine}",
                  show_header=explain)
    table.add_column("setting", style="bold")
    table.add_column("value")
    if explain:
        table.add_column("why")
        fp = recipe.fingerprint
        console.print(f"fingerprint: {'3D volumes' if fp.get('is_3d') else '2D images'}, "
                      f"{fp.get('n_train_cases')} training cases ({fp.get('n_train_planes')} planes), "
                      f"median size {fp.get('plane_shape')}, spacing {fp.get('spacing_mm') or 'unknown'}, "
                      f"{fp.get('n_classes')} class(es), foreground {100 * fp.get('foreground_fraction', 0):.1f} % "
                      f"of a plane, on {100 * fp.get('foreground_planes', 0):.0f} % of the planes"
                      + (f", planes {fp.get('slice_mm') or 'an unknown distance'} mm apart, the structure across "
                         f"{fp.get('foreground_depth', 1):g} of them" if fp.get("is_3d") else ""), soft_wrap=True)
    for key, value, why in recipe.rows():
        table.add_row(key, value, *([why] if explain else []))
    console.print(table)
    console.print(f"recipe: [bold]{target}[/]; train with it: `cardioseg train -d {prepared} "
                  f"--time-budget {recipe.budget_s:g}s`")


@plan_app.command("show")
@reports_errors
def plan_show(
    path: Annotated[Path, typer.Argument(callback=_model_or_folder, help="prepared dataset folder, run folder, checkpoint "
                                         "(.safetensors), export (.onnx) or a ready-trained model's name")],
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as JSON")] = False,
) -> None:
    """Print the plan of a prepared dataset, a checkpoint or an exported model."""
    from cardioseg.artifacts import load_plan

    plan = load_plan(path)
    if as_json:
        console.print_json(plan.model_dump_json())
        return
    table = Table(title=f"plan of {path}", show_header=False)
    table.add_column("setting", style="bold")
    table.add_column("value")
    for setting, value in plan.describe():
        table.add_row(setting, value)
    console.print(table)


@app.command()
@reports_errors
def demo(
    config: Annotated[Path, typer.Option("--config", "-c", help="demo configuration")] = Path("demo/demo.yaml"),
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """The main job on the bundled CAMUS sample: prepare, train (about 2.5 min), evaluate."""
    from cardioseg.data.prepare import prepare_dataset
    from cardioseg.evaluation.evaluate import evaluate_model, summary_table
    from cardioseg.training.run import train as run_training

    cfg = resolve(config, set_)
    console.rule("1/3 prepare")
    result = prepare_dataset(cfg, progress=not quiet)
    console.print(f"{result.n_samples} samples: {result.split_counts}")
    console.rule("2/3 train")
    trained = run_training(cfg, progress=not quiet)
    if cfg.train.plan and trained.writes_model:
        _choose_postprocess(trained.model_path, cfg.data.prepared, quiet)
    dice = f"{trained.best_val_dice:.4f}" if trained.best_val_dice is not None else "n/a"
    done = "already trained: " if trained.already_finished else ""
    console.print(f"{done}{trained.epochs_run} epoch(s) in {trained.train_seconds:.0f}s ({trained.precision}), "
                  f"best validation Dice {dice}")
    console.rule("3/3 evaluate on held-out patients")
    evaluated = evaluate_model(trained.model_path, cfg.data.prepared, cfg, progress=not quiet)
    console.print(summary_table(evaluated))
    console.print(f"Run folder: [bold]{cfg.train.run_dir}[/]; evaluation: [bold]{evaluated.out_dir}[/]")
    from cardioseg.report.html import build_report

    console.print(f"Report: [bold]{build_report(cfg.train.run_dir, cfg, evaluated.out_dir)}[/]")


@app.command("models")
@reports_errors
def list_models_command(
    summary: Annotated[str | None, typer.Option("--summary", help="print the size table of this architecture instead")] = None,
    pretrained: Annotated[bool, typer.Option("--pretrained", help="list the ready-trained models shipped with cardioseg")] = False,
    encoder: Annotated[str | None, typer.Option("--encoder", help="encoder of an smp architecture (with --summary)")] = None,
    size: Annotated[int, typer.Option("--size", min=1, help="image side in pixels for the memory and GFLOPs figures")] = 256,
    classes: Annotated[int, typer.Option("--classes", min=1, help="output channels of the summarised model")] = 1,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """List the registered architectures (or with --pretrained the ready-trained models), or with --summary ARCH
    measure one: parameters, memory, layers, GFLOPs."""
    from cardioseg.models.registry import get_model_entry, is_volumetric, list_models
    from cardioseg.models.smp_models import STUDY_ENCODERS

    if pretrained:
        from cardioseg.models.zoo import pretrained_models

        zoo = Table(title="ready-trained models (use the name with -m)")
        for column in ("name", "segments", "learnt from", "validation", "data licence"):
            zoo.add_column(column)
        for name, entry in pretrained_models().items():
            card = entry.card
            zoo.add_row(name, card.get("task", ""), card.get("data", ""), card.get("validation", {}).get("text", ""),
                        card.get("licence", ""))
        console.print(zoo)
        return

    if summary is not None:
        from cardioseg.models.summary import summarize

        cfg = resolve(config, set_, **{"model.arch": summary, "model.encoder": encoder, "model.classes": classes})
        figures = summarize(cfg.model, size)
        described = summary + (f" ({cfg.model.encoder})" if get_model_entry(summary).uses_encoder else "")
        block = f" x {cfg.model.window_planes} planes" if is_volumetric(summary) else ""
        table = Table(title=f"{described}, batch 1, {cfg.model.in_channels} x {size} x {size}{block}, float32")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for label, value in [
            ("total parameters", f"{figures.total_params:,}"),
            ("trainable parameters", f"{figures.trainable_params:,}"),
            ("parameter memory (MB)", f"{figures.param_mb:.2f}"),
            ("forward/backward pass memory (MB)", f"{figures.activation_mb:.2f}"),
            ("total memory (MB)", f"{figures.total_mb:.2f}"),
            ("layers with parameters", f"{figures.layers_with_params:,}"),
            ("leaf modules", f"{figures.leaf_modules:,}"),
            ("GFLOPs per image (2 x MACs)", f"{figures.gflops:.3f}"),
        ]:
            table.add_row(label, value)
        console.print(table)
        return

    table = Table(title="registered architectures")
    table.add_column("name")
    table.add_column("encoder")
    table.add_column("description")
    for name in list_models():
        entry = get_model_entry(name)
        table.add_row(name, "yes" if entry.uses_encoder else "-", entry.description.splitlines()[0] if entry.description else "")
    console.print(table)
    console.print(f"encoders of the echo study: {', '.join(STUDY_ENCODERS)}")


@app.command()
@reports_errors
def report(
    run_dir: Annotated[Path, typer.Argument(help="training run folder, an evaluation folder, or a predict output folder")],
    evaluation: Annotated[Path | None, typer.Option("--evaluation", "-e", help="evaluation folder, when not RUN_DIR/evaluation")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="HTML file (default RUN_DIR/report.html)")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """One self-contained HTML report (opens offline): metrics, clinical indices, cases, videos, 3D view;
    of a `predict` folder: every input's QC flag (to check first) and each cine's curve with ED/ES and EF."""
    from cardioseg.artifacts import PredictionFiles
    from cardioseg.report.html import build_report
    from cardioseg.report.predictions import build_predictions_report

    cfg = resolve(config, set_, **{"report.out": out})
    if PredictionFiles(run_dir).table.is_file() and evaluation is None:
        console.print(f"Report: [bold]{build_predictions_report(run_dir, cfg.report.out)}[/]")
        return
    console.print(f"Report: [bold]{build_report(run_dir, cfg, evaluation)}[/]")


@app.command()
@reports_errors
def predict(
    inputs: Annotated[list[Path], typer.Argument(help="image files, folders (searched recursively), DICOM files, NIfTI/MHD volumes")],
    model: Annotated[list[Path], typer.Option("--model", "-m", callback=_named_models, help="ready-trained model name (`models --pretrained`) or model file (.safetensors, or .onnx from `cardioseg export`); repeat for an ensemble")],
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output folder")] = None,
    backend: Annotated[str | None, typer.Option(help="auto (the fastest measured on this machine), torch, onnx or openvino")] = None,
    tta: Annotated[bool | None, typer.Option("--tta/--no-tta", help="average over left-right and up-down flips")] = None,
    overlays: Annotated[bool | None, typer.Option("--overlays/--no-overlays", help="also write contour overlays (PNG)")] = None,
    probabilities: Annotated[bool | None, typer.Option("--probabilities/--no-probabilities", help="also write probability maps (.npy, NIfTI for volumes)")] = None,
    visible: Annotated[bool, typer.Option("--visible", help="also write 2D masks spread over 0..255 (0/255 when binary)")] = False,
    threshold: Annotated[float | None, typer.Option(help="foreground probability threshold of one-channel models")] = None,
    closing_radius: Annotated[int | None, typer.Option(help="morphological closing radius in pixels (0 = off)")] = None,
    fill_holes: Annotated[bool | None, typer.Option("--fill-holes/--no-fill-holes")] = None,
    largest_component: Annotated[bool | None, typer.Option("--largest-component/--no-largest-component")] = None,
    precision: Annotated[str | None, typer.Option(help="auto, 32, bf16 (torch, openvino) or int8 (onnx, openvino; from export --int8)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="images per network call")] = None,
    memory_mb: Annotated[float | None, typer.Option("--memory-mb", help="memory for one volume (default: half of what is free); larger volumes are streamed")] = None,
    skip_bad: Annotated[bool | None, typer.Option("--skip-bad/--no-skip-bad", help="go on past unreadable inputs, list them, exit 1")] = None,
    series: Annotated[str | None, typer.Option("--series", help="SeriesInstanceUID to segment in folders of several DICOM series (an unknown one lists them)")] = None,
    fmt: Annotated[str | None, typer.Option("--format", help="label map file: png, nifti, dicom-seg or rtstruct (DICOM inputs); default png for 2D, nifti for volumes")] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="say which backend auto chose and why")] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Segment images, DICOM files and volumes; masks keep each input's size, layout and geometry."""
    from cardioseg.inference.predict import predict_files

    cfg = resolve(
        config, set_,
        **{"predict.out_dir": out, "predict.backend": backend, "predict.tta": tta, "predict.overlays": overlays,
           "predict.probabilities": probabilities, "predict.postprocess.threshold": threshold,
           "predict.postprocess.closing_radius": closing_radius, "predict.postprocess.fill_holes": fill_holes,
           "predict.postprocess.largest_component": largest_component, "predict.precision": precision,
           "predict.batch_size": batch_size, "predict.skip_bad": skip_bad, "predict.series": series,
           "predict.format": fmt},
    )
    result = predict_files(inputs, model, cfg, visible_masks=visible, memory_budget_mb=memory_mb, progress=not quiet)
    console.print(
        f"Segmented {len(result.outputs)} input(s) ({result.n_planes} planes) in {result.seconds:.1f}s, "
        f"network {result.ms_per_image:.1f} ms/plane; outputs in [bold]{result.out_dir}[/]"
    )
    console.print(f"Ran: {'; '.join(result.backends)}")
    if result.skipped:
        console.print(f"[yellow]{len(result.skipped)} file(s) of other types left out[/], e.g. {result.skipped[0]}")
    for description, why in zip(result.backends, result.why):
        if why and verbose:
            console.print(f"Why {description.split(' on ')[0]}: {why}", highlight=False)
        elif why.startswith("not measured"):
            console.print("hint: `cardioseg tune -m MODEL IMAGES` measures the backends on this machine once; "
                          "--backend auto then runs the fastest")
    if result.bad:
        from cardioseg.artifacts import PredictionFiles
        from cardioseg.errors import problem_summary

        listing = PredictionFiles(result.out_dir).bad_files  # written by predict_files, as CSV
        err_console.print(f"[bold red]error:[/] {problem_summary(f'{len(result.bad)} input(s) could not be segmented:', result.bad, listing)}",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command()
@reports_errors
def pacs(
    url: Annotated[str, typer.Option("--url", help="DICOMweb root, e.g. https://pacs.example.org/dicom-web")],
    study: Annotated[str, typer.Option("--study", help="StudyInstanceUID to segment")],
    model: Annotated[list[Path], typer.Option("--model", "-m", callback=_named_models, help="ready-trained model name (`models --pretrained`) or model file; repeat for an ensemble")],
    series: Annotated[str | None, typer.Option("--series", help="only this SeriesInstanceUID of the study")] = None,
    token_file: Annotated[Path | None, typer.Option("--token-file", help="file holding a bearer token or one 'Name: value' header (default: $CARDIOSEG_PACS_TOKEN)")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="local copy of the outputs")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Fetch a study over DICOMweb (QIDO-RS, WADO-RS), segment it, store the DICOM SEGs back (STOW-RS)."""
    from cardioseg.pacs.dicomweb import auth_headers
    from cardioseg.pacs.roundtrip import segment_study

    cfg = resolve(config, set_, **{"predict.out_dir": out})
    trip = segment_study(url, study, model, cfg, auth_headers(token_file), series)
    console.print(f"Study {trip.study_uid}: {trip.instances} image(s) of {len(trip.series)} series segmented, "
                  f"{len(trip.stored)} DICOM SEG(s) stored at {url}; local copy in [bold]{trip.prediction.out_dir}[/]")


@app.command()
@reports_errors
def export(
    model: Annotated[Path, typer.Option("--model", "-m", callback=_named_models, help="ready-trained model name (`models --pretrained`) or model file (model.safetensors)")],
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="onnx or torchscript")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="output file (default: next to the model)")] = None,
    opset: Annotated[int | None, typer.Option(help="ONNX opset")] = None,
    dynamic_batch: Annotated[bool | None, typer.Option("--dynamic-batch/--fixed-batch", help="any batch size, or exactly 1")] = None,
    int8: Annotated[bool | None, typer.Option("--int8/--fp32", help="static int8 quantisation (needs --calibration)")] = None,
    calibration: Annotated[Path | None, typer.Option(help="prepared dataset: its train images calibrate int8, its val/test images check the masks")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Export a model with its intensity normalisation and activation to ONNX or TorchScript, plus a JSON sidecar."""
    from cardioseg.inference.export import export_model

    cfg = resolve(config, set_, **{"export.format": fmt, "export.out": out, "export.opset": opset,
                                   "export.dynamic_batch": dynamic_batch, "export.int8": int8,
                                   "export.calibration": calibration})
    result = export_model(model, cfg.export)
    console.print(f"Exported [bold]{result.path}[/] (sidecar {result.sidecar.name}); "
                  f"largest probability difference from PyTorch on a check batch: {result.max_abs_diff:.2e}")
    if result.int8 is not None:
        console.print(f"int8 masks against fp32 on {len(result.int8.dice)} held-out images: Dice min "
                      f"{result.int8.minimum:.4f}, mean {result.int8.mean:.4f}")


@app.command()
@reports_errors
def tune(
    inputs: Annotated[list[Path], typer.Argument(help="images, folders or volumes to measure on (the first 16 planes)")],
    model: Annotated[Path, typer.Option("--model", "-m", callback=_named_models, help="ready-trained model name (`models --pretrained`) or model file (.safetensors or .onnx)")],
    batch_size: Annotated[int | None, typer.Option(help="images per network call (as predict will use)")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Measure every backend for this model on this machine and remember the fastest for --backend auto."""
    from rich.table import Table

    from cardioseg.inference.predict import tune_backends

    cfg = resolve(config, set_, **{"predict.batch_size": batch_size})
    choice = tune_backends(inputs, model, cfg)
    table = Table("backend", "precision", "images/s", "min Dice vs fp32", "used")
    for trial in sorted(choice.trials, key=lambda t: -t.images_per_s):
        chosen = (trial.backend, trial.precision) == (choice.backend, choice.precision)
        table.add_row(trial.backend, trial.precision, f"{trial.images_per_s:.1f}", f"{trial.min_dice:.4f}",
                      "chosen" if chosen else ("" if trial.accepted else trial.note))
    console.print(table)
    console.print(f"auto will run {choice.backend} {choice.precision}: {choice.reason}", highlight=False)


@app.command()
@reports_errors
def sweep(
    out: Annotated[Path | None, typer.Option("--out", "-o", help="sweep folder (resumes if it holds a sweep)")] = None,
    backend: Annotated[str | None, typer.Option(help="local (one run after another) or ray")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address (auto, ray://host:10001); default: a private local Ray")] = None,
    max_concurrent: Annotated[int | None, typer.Option("--max-concurrent", help="runs at once on Ray")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Train and evaluate a grid of architectures x encoders x augmentations; write the study's tables and plots."""
    from cardioseg.sweep.run import run_sweep

    cfg = resolve(config, set_, **{"sweep.out_dir": out, "sweep.backend": backend, "sweep.address": address,
                                   "sweep.max_concurrent": max_concurrent})

    def show(record: dict[str, Any], done: int, total: int) -> None:
        if record["status"] == "ok":
            outcome = f"Dice {record['metrics']['dice']:.4f} in {record['finished'] - record['started']:.0f}s"
        else:
            outcome = f"[red]failed[/]: {record['error']}"
        console.print(f"[{done}/{total}] {record['run_id']}: {outcome}", highlight=False)

    result = run_sweep(cfg, on_record=show)
    console.print(f"{result.ran} run(s) done, {result.skipped} already finished, {len(result.failed)} failed; "
                  f"report: [bold]{result.written['markdown']}[/] and {result.written['html'].name}, "
                  f"tables in {result.out_dir / 'tables'}, plots in {result.out_dir / 'plots'}")


@app.command()
@reports_errors
def serve(
    model: Annotated[Path, typer.Option("--model", "-m", callback=_named_models, help="ready-trained model name (`models --pretrained`) or model file (model.safetensors) to serve")],
    host: Annotated[str | None, typer.Option(help="bind address (default 127.0.0.1); 0.0.0.0 opens the app to the network")] = None,
    port: Annotated[int | None, typer.Option(help="port (default 8000)")] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """A local web app to review segmentations and correct them with a brush (see docs/app.md)."""
    import uvicorn

    from cardioseg.app.server import create_app

    cfg = resolve(config, set_, **{"serve.host": host, "serve.port": port})
    web_app = create_app(model, cfg)
    console.print(f"Serving {model} at [bold]http://{cfg.serve.host}:{cfg.serve.port}[/] (Ctrl+C stops)")
    uvicorn.run(web_app, host=cfg.serve.host, port=cfg.serve.port, log_level="warning")
