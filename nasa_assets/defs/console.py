"""The console logger of `python -m nasa_assets run`: Dagster's events, minus stack traces.

A person at a terminal needs what failed and why; the frames stay in the run's event log (and in
the UI when DAGSTER_HOME is set), where a developer can read them.
"""

import logging
import re
import sys

import dagster as dg

# SerializableErrorInfo.to_string() writes "\nStack Trace:\n" and then indented frame lines.
_STACK = re.compile(r"\nStack Trace:\n(?:[ \t][^\n]*\n?|\n)*")


def strip_stack_traces(text: str) -> str:
    return _STACK.sub("\n", text).rstrip()


class TracebackFreeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return strip_stack_traces(super().format(record))

    def formatException(self, ei) -> str:  # noqa: N802 (logging's name)
        return ""


@dg.logger(
    config_schema={"log_level": dg.Field(str, default_value="INFO")},
    description="Dagster's events on stderr; errors keep their messages and causes, not stack traces.",
)
def concise_console_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    logger = logging.Logger("nasa_assets", level=init_context.logger_config["log_level"].upper())
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(TracebackFreeFormatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
    logger.addHandler(handler)
    return logger


def root_cause(error) -> str:
    """The innermost message of a Dagster SerializableErrorInfo chain (what the user's code raised)."""
    while error.cause is not None:
        error = error.cause
    return strip_stack_traces(error.message)
