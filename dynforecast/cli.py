"""The `dynforecast` command line: argument parsing and printing only, no science.

Each subcommand parses its options, calls one library function and prints the result. Heavy
imports (torch, mdtraj, h5py) happen inside the command bodies so that ``--help`` is instant.
Errors a user can cause (`DynforecastError`) become one ``error: ...`` line on stderr and the
documented exit code; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from dynforecast import __version__
from dynforecast.console import counted
from dynforecast.errors import DynforecastError

app = typer.Typer(
    name="dynforecast",
    help="Forecast trajectories of molecules, proteins and skeletons with equivariant graph networks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state = {"debug": False}

# Typer's own control flow (exit codes, aborts, usage errors) must pass the catch-all below; the
# classes moved between typer releases (click's in older ones, typer's own in newer), so collect those
# this typer has.
_TYPER_CONTROL_FLOW: tuple[type[BaseException], ...] = tuple(
    cls
    for cls in (
        typer.Exit,
        typer.Abort,
        getattr(typer, "BadParameter", None),
        getattr(getattr(typer, "exceptions", None), "TyperException", None),
    )
    if isinstance(cls, type)
)

F = TypeVar("F", bound=Callable[..., Any])


def _print_usage_error(error: Exception) -> None:
    """click's own usage errors (bad option value, missing argument) as one ``error:`` line.

    Typer draws them as a multi-line box; every other error of this CLI is one line on stderr, so
    that a pipeline's log or a SLURM job's .err file reads the same for all (exit code unchanged, 2).
    """
    context = getattr(error, "ctx", None)
    message = error.format_message() if hasattr(error, "format_message") else str(error)
    message = " ".join(message.split()).rstrip(".")
    if context is not None:
        print(f"error: {message} (see '{context.command_path} --help')", file=sys.stderr)
    else:
        print(f"error: {message}", file=sys.stderr)


try:  # typer calls rich_utils.rich_format_error(e) when rich is installed (it always is here)
    from typer import rich_utils as _typer_rich_utils

    _typer_rich_utils.rich_format_error = _print_usage_error
except ImportError:  # pragma: no cover - typer without rich falls back to click's plain form
    pass


def _flags_without_a_value_type() -> None:
    """Show no value type beside a flag in --help (typer 0.29 prints ``--json <bool>``).

    A flag takes no value: ``<bool>`` beside it reads as if ``--json true`` were expected.
    Options that take values keep their ``<int>``, ``<str>`` labels.
    """
    from typer.core import TyperOption

    typed = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: Any) -> str | None:
        return None if getattr(self, "is_bool_flag", False) else typed(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]


_flags_without_a_value_type()


def _end_now_if_the_process_group_broke(code: int) -> None:
    """Exit at once with ``code`` after a peer of a DDP run went away (see
    `dynforecast.train.distributed.group_broken`): outputs are flushed, files were closed when
    the error unwound the run, and only the interpreter's teardown, which gloo can abort, is
    skipped."""
    distributed = sys.modules.get("dynforecast.train.distributed")
    if distributed is not None and distributed.group_broken():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def handle_errors(command: F) -> F:
    """Turn a `DynforecastError` into one stderr line and its exit code (traceback with --debug)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except DynforecastError as exc:
            if _state["debug"]:
                raise
            print(f"error: {exc}", file=sys.stderr)
            _end_now_if_the_process_group_broke(exc.exit_code)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # The reader of a pipe went away (`dynforecast info x.h5 --json | head`): end quietly
            # as a killed-by-SIGPIPE tool would, with nothing more written to the closed pipe.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(141) from None  # 128 + SIGPIPE
        except _TYPER_CONTROL_FLOW:
            raise
        except Exception as exc:  # a bug: one line and exit 1, the traceback under --debug
            if _state["debug"]:
                raise
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else "no message"
            print(
                f"error: internal error ({type(exc).__name__}: {reason}); "
                "rerun with --debug for the traceback and please report it",
                file=sys.stderr,
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _version_callback(value: bool) -> None:
    if value:
        print(f"dynforecast {__version__}")
        raise typer.Exit(0)


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version_callback,
            is_eager=True,
            help="Print the version and exit.",
        ),
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """Forecast trajectories with E(3)-equivariant spatio-temporal graph networks (ESTAG, SAKE)."""
    _state["debug"] = debug
    from dynforecast.io.quiet import show_library_output

    show_library_output(debug)  # C-level library chatter (dcdplugin banners) only under --debug


# Shared option types -------------------------------------------------------------------------


def output_file(text: str) -> Path:
    """An output file's name as given: a trailing ``/`` means a directory, never a file (Path
    would drop it and write a file under the directory's name)."""
    if text.endswith(("/", os.sep)):
        raise typer.BadParameter(f"{text}: ends in '/', which names a directory; give a file name")
    return Path(text)


OutputOption = Annotated[
    Path, typer.Option("--output", "-o", help="Output file.", parser=output_file)
]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing output file.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]

# Commands: ingest, info ------------------------------------------------------------------------


@app.command()
@handle_errors
def ingest(
    inputs: Annotated[
        list[Path],
        typer.Argument(
            help="PDB, XYZ/extended XYZ, BVH, or trajectories (DCD, XTC, TRR, ...) with --topology."
        ),
    ],
    output: OutputOption,
    topology: Annotated[
        Path | None,
        typer.Option(help="Topology (PDB, PSF, GRO, PRMTOP, MOL2) of every trajectory input."),
    ] = None,
    name: Annotated[
        list[str] | None,
        typer.Option("--name", help="System name, once per input (default: file name)."),
    ] = None,
    select: Annotated[
        str | None,
        typer.Option(
            help="Atom/joint selection, e.g. 'name CA', 'not element H', 'index 0 to 9' "
            "(mdtraj's language on mdtraj inputs; element, name, index, and/or/not on XYZ, BVH)."
        ),
    ] = None,
    stride: Annotated[int, typer.Option(help="Keep every STRIDE-th frame.")] = 1,
    chunk_frames: Annotated[
        int | None,
        typer.Option(help="Frames read and written at a time [default: about 8 MiB of them]."),
    ] = None,
    time_step: Annotated[
        str | None,
        typer.Option(
            help="Time between the input's frames, e.g. '2 ps' or '0.5 fs' (fs, ps, ns, ms, s); "
            "replaces the file's own times. A DCD's times come from its header: DELTA (AKMA "
            "units, 1 AKMA = 0.04888821 ps) x NSAVC steps per frame, from ISTART; a DCD whose "
            "header has no time step (DELTA or NSAVC not positive), BINPOS, LAMMPS dumps, "
            "multi-model PDB, GRO without t= and XYZ without time= store none: their frames "
            "get the frame index (unit 1) and a note. AMC times assume 120 frames/s."
        ),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Convert PDB, topology + trajectory, XYZ/extxyz and BVH files into one H5MD file, one system per input."""
    from contextlib import nullcontext

    from dynforecast.console import is_interactive, log, stderr
    from dynforecast.io.ingest import TimeStep, format_ingest_summary
    from dynforecast.io.ingest import ingest as run_ingest
    from dynforecast.io.output_name import check_h5md_output_name

    check_h5md_output_name(output)
    parsed_time_step = TimeStep.parse(time_step) if time_step is not None else None

    spinner = stderr.status("ingesting") if is_interactive() else nullcontext()
    with spinner as status:

        def progress(system: str, frames: int) -> None:
            if status is not None:
                status.update(f"ingesting {system}: {counted(frames, 'frame')}")

        systems = run_ingest(
            inputs,
            output,
            topology=topology,
            names=name,
            select=select,
            stride=stride,
            chunk_frames=chunk_frames,
            overwrite=overwrite,
            time_step=parsed_time_step,
            progress=progress,
        )
    for system in systems:
        log(
            f"ingested {system.source} -> {output}:{system.name} ({counted(system.frames, 'frame')})"
        )
    print(format_ingest_summary(systems, output))


@app.command()
@handle_errors
def info(
    file: Annotated[
        Path, typer.Argument(help="An H5MD file, or a run directory or checkpoint (= report).")
    ],
    json_output: JsonOption = False,
) -> None:
    """Show the systems of an H5MD file: frames, particles, species, units, ranges, NaN counts."""
    import json

    if file.is_dir() or file.suffix == ".pt":
        from dynforecast.train.report import describe_run

        run = describe_run(file)
        print(json.dumps(run.to_dict(), indent=2) if json_output else run.text())
        return

    from dynforecast.io.info import describe_h5md, format_info

    summary = describe_h5md(file)
    print(json.dumps(summary, indent=2) if json_output else format_info(summary))


# Commands: generate ----------------------------------------------------------------------------

generate_app = typer.Typer(
    help="Generate synthetic data sets (the built-in charged N-body system).",
    no_args_is_help=True,
)
app.add_typer(generate_app, name="generate")


@generate_app.command("nbody")
@handle_errors
def generate_nbody(
    output: OutputOption,
    trajectories: Annotated[
        int | None,
        typer.Option(
            "--trajectories", "-n", help="Trajectories to simulate.", min=1, show_default="1000"
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random stream (EGNN's data: 43).")] = 43,
    first_index: Annotated[
        int, typer.Option(help="Stream index of the first trajectory (skip-ahead).", min=0)
    ] = 0,
    mode: Annotated[
        str,
        typer.Option(
            help="exact: EGNN's per-trajectory float64 arithmetic (~0.2 s per trajectory); "
            "fast: all trajectories at once (~10x faster, tested against exact)."
        ),
    ] = "exact",
    recipe: Annotated[
        str | None,
        typer.Option(
            help="An EGNN data set instead of --trajectories: nbody_small (EGNN's exact "
            "3000/2000/2000 train/valid/test) or shortcut (stream 0-6999); the file records "
            "its protocol and split, which train uses."
        ),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Simulate EGNN's charged 5-particle system (frames 30 -> 40 is the standard task) to H5MD."""
    from contextlib import nullcontext

    from dynforecast.console import is_interactive, stderr
    from dynforecast.data.builtin import generate_nbody_file
    from dynforecast.io.output_name import check_h5md_output_name

    check_h5md_output_name(output)
    spinner = stderr.status("simulating") if is_interactive() else nullcontext()
    with spinner as status:

        def progress(done: int, total: int) -> None:
            if status is not None:
                status.update(f"simulated {done}/{total} trajectories")

        summary = generate_nbody_file(
            output,
            trajectories,
            seed,
            mode=mode,
            first_index=first_index,
            recipe=recipe,
            overwrite=overwrite,
            progress=progress,
        )
    print(summary.line())


# Commands: train, evaluate, predict ------------------------------------------------------------
# (learning commands go here)


DeviceOption = Annotated[
    str | None,
    typer.Option(help="auto (CUDA if available), cpu, cuda or cuda:<index>.", show_default="auto"),
]


QuietOption = Annotated[
    bool,
    typer.Option("--quiet", "-q", help="Only errors and the result line (no logs, progress)."),
]


RigidBonesOption = Annotated[
    bool | None,
    typer.Option(
        "--rigid-bones/--no-rigid-bones",
        help="Keep every bone of a skeleton at its length in rollouts.",
        show_default="on for BVH and ASF/AMC input",
    ),
]


def _set_quiet(quiet: bool) -> None:
    from dynforecast.console import set_quiet

    set_quiet(quiet)


def _given_command(ctx: typer.Context, leave_out: tuple[str, ...] = ()) -> list[str]:
    """The words of the command as the user gave it (subcommand, arguments, options set on the
    command line), rebuilt from the parsed values so it also works under torchrun and tests."""
    words = [ctx.info_name or ctx.command.name or ""]
    options: list[str] = []
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name) if param.name else None
        if param.name in leave_out or source is None or source.name != "COMMANDLINE":
            continue
        value = ctx.params.get(param.name)
        if param.param_type_name == "argument":
            words.extend(str(v) for v in (value if isinstance(value, (list, tuple)) else [value]))
        elif getattr(param, "is_flag", False):
            options.append(param.opts[0] if value else param.secondary_opts[0])
        else:
            for item in value if getattr(param, "multiple", False) else [value]:
                options.extend([param.opts[0], str(item)])
    return words + options


@app.command()
@handle_errors
def models(json_output: JsonOption = False) -> None:
    """List the models with their hyperparameters (model.<name> keys): types, defaults, meanings."""
    import json

    from dynforecast.models.catalogue import describe_models, format_models

    entries = describe_models()
    if json_output:
        print(json.dumps({"models": [entry.to_dict() for entry in entries]}, indent=2))
    else:
        print(format_models(entries))


@app.command()
@handle_errors
def report(
    run: Annotated[Path, typer.Argument(help="Run directory (or a checkpoint in one).")],
    plot: Annotated[
        Path | None,
        typer.Option(
            help="Also draw the training and validation curves to this PNG.", parser=output_file
        ),
    ] = None,
    overwrite: OverwriteOption = False,
    json_output: JsonOption = False,
) -> None:
    """Summarise a run: data, model, parameters, epochs, best epoch, time, changed settings."""
    import json

    from dynforecast.train.report import describe_run, plot_curves

    summary = describe_run(run)
    if plot is not None:
        plot_curves(summary, plot, overwrite=overwrite)
    print(json.dumps(summary.to_dict()) if json_output else summary.text())
    if plot is not None and not json_output:
        print(f"curves -> {plot}")


@app.command()
@handle_errors
def train(
    ctx: typer.Context,
    data: Annotated[
        Path | None,
        typer.Argument(help="H5MD data file; without it the built-in N-body set (cached)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="estag, sake or egnn.", show_default="estag")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Run directory; resumes if it holds last.pt.",
            show_default="runs/<model>-<digest of data and configuration>",
            file_okay=False,
        ),
    ] = None,
    config: Annotated[
        Path | None, typer.Option(help="Configuration file (.toml or .json).", dir_okay=False)
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Override a configuration key, e.g. optim.lr=1e-3 (repeatable)."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="optim.epochs", show_default="20")] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Windows per step of each process (optim.batch_size); under DDP the global "
            "batch is this times the number of processes (printed at the start).",
            show_default="training windows / 10, 1 to 100, divided among the processes",
        ),
    ] = None,
    lr: Annotated[float | None, typer.Option(help="optim.lr", show_default="5e-4")] = None,
    seed: Annotated[int | None, typer.Option(help="seed", show_default="0")] = None,
    device: DeviceOption = None,
    amp: Annotated[
        bool, typer.Option("--amp", help="Deprecated: the same as --precision bf16 (optim.amp).")
    ] = False,
    precision: Annotated[
        str | None,
        typer.Option(
            help="fp32, bf16 or fp16 autocast of the training forward pass, CPU or CUDA "
            "(optim.precision).",
            show_default="fp32",
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads per process.",
            show_default="the CPUs this process may use: affinity, SLURM_CPUS_PER_TASK, "
            "cgroup quota",
        ),
    ] = None,
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="Train through torch.compile: faster steps after tens of seconds of "
            "compilation (optim.compile).",
        ),
    ] = False,
    val_every: Annotated[
        int | None,
        typer.Option(help="Validate every N epochs (optim.val_every).", show_default="1", min=1),
    ] = None,
    print_config: Annotated[
        bool,
        typer.Option(
            "--print-config",
            help="Print the fully resolved configuration as TOML (for --config) and exit.",
        ),
    ] = False,
    json_output: JsonOption = False,
    seeds: Annotated[
        int | None,
        typer.Option(help="Train this many ensemble members (seeds seed.. into OUT/seed-<s>)."),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="A paper's protocol as one preset: md17, adk, motion or nbody (window, graph, "
            "split, optimiser); --config, --set and options override it."
        ),
    ] = None,
    quiet: QuietOption = False,
) -> None:
    """Train a model; SIGTERM/SIGUSR1/Ctrl-C checkpoint, exit 75 (130) and print the resume command.

    Every configuration key: `dynforecast train DATA --print-config` (all sections, resolved) and
    `dynforecast models` (the model.<hyperparameter> keys).
    """
    import json

    from dynforecast.train.config import resolve_config
    from dynforecast.train.run import train as run_training

    options = {
        "model.name": model,
        "optim.epochs": epochs,
        "optim.batch_size": batch_size,
        "optim.lr": lr,
        "seed": seed,
        "device": device,
        "optim.amp": True if amp else None,
        "optim.compile": True if compile_model else None,
        "optim.val_every": val_every,
        "optim.precision": precision,
    }
    _set_quiet(quiet)
    resolved = resolve_config(config, set_ or [], options, protocol=protocol)
    if print_config:
        from dynforecast.train.print_config import resolved_toml

        print(resolved_toml(data, resolved), end="")
        return
    command = _given_command(ctx, leave_out=("json_output",))
    if seeds is not None:
        from dynforecast.ensemble import train_members

        members = train_members(data, resolved, out, seeds, threads=threads, command=command)
        for summary in members:
            if summary.is_main:
                print(json.dumps(summary.to_dict()) if json_output else summary.line())
        return
    summary = run_training(data, resolved, out, command=command, threads=threads)
    if summary.is_main:  # one result line per run, not one per DDP rank
        print(json.dumps(summary.to_dict()) if json_output else summary.line())


@app.command()
@handle_errors
def evaluate(
    checkpoint: Annotated[
        list[Path],
        typer.Argument(
            help="best.pt or last.pt of a run, or a run directory (several make an ensemble), "
            "then the H5MD data file (default: the file the run was trained on).",
            metavar="CHECKPOINT... [DATA]",
        ),
    ],
    split: Annotated[str, typer.Option(help="test, val, train or all.")] = "test",
    device: DeviceOption = None,
    json_output: JsonOption = False,
    members: Annotated[
        list[Path] | None,
        typer.Option("--checkpoint", help="Another ensemble member (repeatable)."),
    ] = None,
    rollout: Annotated[
        int | None,
        typer.Option(help="Roll out K steps from each start and report errors per step."),
    ] = None,
    starts: Annotated[
        int | None,
        typer.Option(help="Evenly spaced start windows (--rollout).", show_default="all"),
    ] = None,
    trust_threshold: Annotated[
        float | None,
        typer.Option(
            help="Trust horizon threshold on the median MSE (data unit squared).",
            show_default="constant velocity's one-step MSE",
        ),
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option(help="Error-versus-horizon plot, .png (--rollout).", parser=output_file),
    ] = None,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
    rigid_bones: RigidBonesOption = None,
) -> None:
    """MSE of a checkpoint on a split, with the stay, constant-velocity and linear baselines."""
    import json

    _set_quiet(quiet)

    from dynforecast.evaluate import evaluate_checkpoint
    from dynforecast.train.trained import split_data_argument

    checkpoint, data = split_data_argument(checkpoint)
    paths = [*checkpoint, *(members or [])]
    if rollout is not None:
        from dynforecast.evaluate_rollout import evaluate_rollout, table
        from dynforecast.io.atomic import reading_inputs
        from dynforecast.plot import check_plot_path, plot_rollout
        from dynforecast.train.trained import checkpoint_inputs

        # --plot may not replace the data, a checkpoint or a file of the checkpoints' runs
        with reading_inputs([data, *checkpoint_inputs(paths)]):
            if plot is not None:
                check_plot_path(plot, overwrite=overwrite)
            result = evaluate_rollout(
                paths,
                data,
                steps=rollout,
                split=split,
                starts=starts,
                trust_threshold=trust_threshold,
                device=device or "auto",
                rigid_bones=rigid_bones,
            )
            if plot is not None:
                plot_rollout(result, plot, overwrite=overwrite)
        print(json.dumps(result) if json_output else table(result))
        return
    from dynforecast.errors import UsageError

    for name, value in (
        ("--starts", starts),
        ("--trust-threshold", trust_threshold),
        ("--plot", plot),
        ("--rigid-bones/--no-rigid-bones", rigid_bones),
    ):
        if value is not None:
            raise UsageError(f"{name} needs --rollout K")
    report = evaluate_checkpoint(paths, data, split, device=device or "auto")
    print(json.dumps(report.to_dict()) if json_output else report.table())


@app.command()
@handle_errors
def predict(
    data: Annotated[Path, typer.Argument(help="H5MD data file with the given frames.")],
    checkpoint: Annotated[
        list[Path],
        typer.Option(
            help="best.pt or last.pt of a run, or a run directory; repeat for an ensemble."
        ),
    ],
    steps: Annotated[
        int,
        typer.Option(help="Frames to predict, one every gcd(spacing, horizon) stored frames."),
    ],
    output: OutputOption,
    system: Annotated[
        str | None, typer.Option(help="System to roll out.", show_default="the first")
    ] = None,
    start: Annotated[
        int | None,
        typer.Option(help="Last given frame.", show_default="the last frame"),
    ] = None,
    export: Annotated[
        Path | None,
        typer.Option(help="Also write the forecast as .pdb, .xyz or .bvh.", parser=output_file),
    ] = None,
    overwrite: OverwriteOption = False,
    device: DeviceOption = None,
    quiet: QuietOption = False,
    rigid_bones: RigidBonesOption = None,
) -> None:
    """Autoregressive rollout to H5MD (observables/is_forecast marks predicted frames)."""
    from dynforecast.io.output_name import check_h5md_output_name
    from dynforecast.predict import predict_file

    check_h5md_output_name(output, " (--export writes .pdb, .xyz, .extxyz, .bvh or .amc)")
    _set_quiet(quiet)

    summary = predict_file(
        data,
        checkpoint,
        output,
        system=system,
        start=start,
        steps=steps,
        export=export,
        overwrite=overwrite,
        device=device or "auto",
        rigid_bones=rigid_bones,
    )
    print(summary.line())
