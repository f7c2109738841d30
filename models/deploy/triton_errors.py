"""One-line errors from the served models: bad input is INVALID_ARG (HTTP 400, gRPC INVALID_ARGUMENT),
and no response carries a traceback.

PyTriton answers every exception of an inference callable with Triton's INTERNAL (HTTP 500) and,
as the message, the tracebacks of both its processes (with install paths): none of its exception
classes maps to another code. So the ``model.py`` that PyTriton hands Triton for each bound model
(its Python-backend proxy, run inside Triton) gets ``execute`` wrapped: a failed call whose message
carries ``INVALID_ARGUMENT_TAG`` answers each of its requests with the tagged line as INVALID_ARG;
any other failure with one INTERNAL line. The tracebacks stay in the server's own log, but for
bad input, which is logged in one line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pytriton.exceptions import PyTritonBadParameterError
from pytriton.models.model import Model

INVALID_ARGUMENT_TAG = "[convnets-hub invalid argument] "
INTERNAL_MESSAGE = "inference failed on the server (its log has the cause)"
# The logger of PyTriton's inference handler, which logs every failed call with its traceback.
INFERENCE_LOGGER = "pytriton.proxy.inference"

# Appended to PyTriton's proxy model.py, which defines TritonPythonModel and imports
# triton_python_backend_utils as pb_utils; runs in Triton's Python backend.
PROXY_SUFFIX = f'''

def _one_line_errors(execute):
    import re

    tagged = re.compile(re.escape({INVALID_ARGUMENT_TAG!r}) + r"([^\\n]*)")

    def one_line_execute(self, requests):
        try:
            return execute(self, requests)
        except pb_utils.TritonModelException as error:
            found = tagged.search(str(error))
            if found:
                failure = pb_utils.TritonError(found.group(1), pb_utils.TritonError.INVALID_ARG)
            else:
                failure = pb_utils.TritonError({INTERNAL_MESSAGE!r})
            return [pb_utils.InferenceResponse(error=failure) for _ in requests]

    return one_line_execute


TritonPythonModel.execute = _one_line_errors(TritonPythonModel.execute)
'''


def invalid_argument(error: Exception) -> PyTritonBadParameterError:
    """The exception an inference callable raises for bad input: its client gets ``error``'s message,
    on one line, as INVALID_ARG."""
    return PyTritonBadParameterError(INVALID_ARGUMENT_TAG + " ".join(str(error).split()))


class _BadInputInOneLine(logging.Filter):
    """A failed call of bad input logged as its one line, without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if INVALID_ARGUMENT_TAG in text:
            record.msg, record.args = "bad input: %s", (text.split(INVALID_ARGUMENT_TAG, 1)[1].splitlines()[0],)
        return True


@contextmanager
def one_line_errors() -> Iterator[None]:
    """The models PyTriton loads into Triton within this block answer errors in one line (see above),
    and bad input is logged in one line."""
    proxy_files = Model.get_proxy_model_files
    log_filter = _BadInputInOneLine()

    def amended_proxy_files(model: Model) -> dict[str, bytes]:
        files = proxy_files(model)
        files[f"file:{model.model_version}/model.py"] += PROXY_SUFFIX.encode()
        return files

    Model.get_proxy_model_files = amended_proxy_files
    logging.getLogger(INFERENCE_LOGGER).addFilter(log_filter)
    try:
        yield
    finally:
        logging.getLogger(INFERENCE_LOGGER).removeFilter(log_filter)
        Model.get_proxy_model_files = proxy_files
