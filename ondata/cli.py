"""The ``ondata`` console script (typer).

Command groups live in ``ondata/commands/<name>.py``; each defines ``register(app)``. A failure
prints one clear line (``error: ...``) and exits non-zero; ``--debug`` shows the traceback.
An interrupted command (exit 130) ends the process at once, skipping interpreter shutdown
(``exit_at_once``). Logging is set up once here (``ondata.redaction.install``): every logger's output, error line and
traceback is redacted (SAS ``sig=``, keys, ``Authorization``, tokens, connection-string secrets,
and the values of secret-named environment variables).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import typer
from pydantic import ValidationError

from indexers.errors import OndataError

COMMAND_MODULES = ("ingest", "retrieval", "chat", "evaluation", "doctor", "schedule", "keys")

app = typer.Typer(
    name="ondata",
    help="Self-hosted 'chat with your data': ingest documents, ask grounded questions with citations, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _quiet_environment() -> None:
    for key, value in {
        "UNSTRUCTURED_DISABLE_NOTICE": "1",
        "SCARF_NO_ANALYTICS": "true",
        "DO_NOT_TRACK": "1",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }.items():
        os.environ.setdefault(key, value)


@app.callback()
def _main(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks and debug logs."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show info logs."),
) -> None:
    from ondata.redaction import install
    from ondata.settings import secret_environment_values

    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    install(level=level, secrets=secret_environment_values())
    if level > logging.INFO:  # pypdf's warnings ("EOF marker not found") name no document; ours do (ingest summary)
        logging.getLogger("pypdf").setLevel(logging.ERROR)
    os.environ["ONDATA_DEBUG"] = "1" if debug else os.environ.get("ONDATA_DEBUG", "")


for _name in COMMAND_MODULES:
    importlib.import_module(f"ondata.commands.{_name}").register(app)


def settings_problems(exc: ValidationError) -> str:
    """One line naming each invalid setting and what is wrong with it."""
    parts = []
    for err in exc.errors():
        field = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        parts.append(f"{field}: {msg}" if field else msg)
    return "; ".join(parts)


def main() -> None:
    from ondata.redaction import redact

    _quiet_environment()
    try:
        app()
    except OndataError as exc:
        if os.environ.get("ONDATA_DEBUG") == "1":
            raise
        typer.secho(redact(f"error: {exc}"), fg=typer.colors.RED, err=True)
        sys.exit(2)
    except ValidationError as exc:  # a setting from a flag, the environment or .env is invalid
        if os.environ.get("ONDATA_DEBUG") == "1":
            raise
        typer.secho(redact(f"error: invalid settings: {settings_problems(exc)}"), fg=typer.colors.RED, err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        exit_at_once(130)
    except SystemExit as exc:
        if exc.code == 130:  # an interrupted command (``ondata ingest``) has closed its index and printed its line
            exit_at_once(130)
        raise


def exit_at_once(code: int) -> None:
    """Flush stdout, stderr and the logs, then end the process without the interpreter's shutdown.

    That shutdown (torch and tokenizer threads, Prefect's atexit hooks) takes seconds after an
    interrupt has already been handled; skipping it is what keeps Ctrl-C within 3 s. Only for the
    console script (``main``): a command that exits 130 has closed what it opened (the index; the
    embedding cache commits each write), so nothing is lost."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said
            pass
    logging.shutdown()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
