"""ondata.redaction: secret-shaped values and registered secrets never reach a log line, whatever the logger."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import pytest

from ondata.redaction import REDACTED, RedactingFilter, redact, redact_record, register_secret

JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXBhcnQ"

CASES = {
    "sas in a url": ("GET https://acct.blob.core.windows.net/c/b?sv=2024-05-04&se=2030&sp=rl&sig=AbC%2Bdef123%3D HTTP/1.1",
                     "AbC%2Bdef123%3D"),
    "key param": ("https://x.example/api?key=supersecretvalue&x=1", "supersecretvalue"),
    "api-key param": ("url?api-key=abcdef0123456789", "abcdef0123456789"),
    "api-key header": ("headers: {'api-key': 'hdr-secret-9876', 'x': 'y'}", "hdr-secret-9876"),
    "api-key header line": ("api-key: line-secret-5555", "line-secret-5555"),
    "authorization bearer": ("Authorization: Bearer tok.en-value_123", "tok.en-value_123"),
    "authorization dict": ("{'Authorization': 'SharedKey devstoreaccount1:c2lnbmF0dXJl'}", "c2lnbmF0dXJl"),
    "bearer anywhere": ("sending bearer abcdefghijklmnop123 to the api", "abcdefghijklmnop123"),
    "jwt": (f"token was {JWT} ok", JWT),
    "account key": ("DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFyYmF6+/==;EndpointSuffix=core",
                    "Zm9vYmFyYmF6+/=="),
    "shared access signature": ("BlobEndpoint=https://a/;SharedAccessSignature=sv=2020&ss=b&sig=zzz%3D;x=1", "sv=2020&ss=b"),
    "access token param": ("cb?access_token=at-123456&state=1", "at-123456"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_redact_removes_the_secret(name):
    text, secret = CASES[name]
    out = redact(text)
    assert secret not in out and REDACTED in out
    assert redact(out) == out  # idempotent


def test_redact_keeps_ordinary_text():
    for text in ("status=200 latency_ms=3.1 principal=hr-app groups=2", "How many days of vacation?",
                 "monkey=3 turkey=4", "https://docs.example.com/handbook.pdf#page=3", "the keys file keys.toml"):
        assert redact(text) == text


def test_registered_secrets_are_redacted_in_any_shape():
    register_secret("odd-shaped-secret-42", "short")
    assert redact("prefix odd-shaped-secret-42 suffix") == f"prefix {REDACTED} suffix"
    assert redact("a short word") == "a short word"  # too short to register


def _capture(logger_name: str, *, propagate: bool = True):
    stream = io.StringIO()
    logger = logging.getLogger(logger_name)
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = propagate
    return logger, handler, stream


def test_record_redaction_covers_args_exceptions_and_templates():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("test.redaction.args")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug('%s://%s:%s "%s %s %s" %s', "https", "acct.blob", 443, "GET", "/c?sig=ARG-SECRET-1", "HTTP/1.1", 200)
        logger.warning("template sig=%s", "TEMPLATE-SECRET-2")
        logger.info("object %s", ValueError("failed for https://x/?sig=OBJ-SECRET-3"))
        try:
            raise RuntimeError("boom AccountKey=EXC-SECRET-4;")
        except RuntimeError:
            logger.exception("with traceback")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    for secret in ("ARG-SECRET-1", "TEMPLATE-SECRET-2", "OBJ-SECRET-3", "EXC-SECRET-4"):
        assert secret not in out
    assert "acct.blob:443" in out and "200" in out and "with traceback" in out


def test_uvicorn_access_formatter_still_works():
    from uvicorn.logging import AccessFormatter

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", "/x?sig=UV-SECRET-5", "1.1", 200), None)
    redact_record(record)
    line = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s').format(record)
    assert "UV-SECRET-5" not in line and "200" in line


INSTALLED = r'''
import logging, sys, warnings
from ondata.redaction import install
install(level=logging.DEBUG, secrets=["REGISTERED-SECRET-6"])
# a library logger with its own handler that does not propagate (as Prefect and uvicorn configure theirs)
own = logging.getLogger("prefect.fake")
h = logging.StreamHandler(sys.stdout)
own.addHandler(h)
own.propagate = False
own.warning("prefect sees sig=%s and %s", "PREFECT-SECRET-7", "REGISTERED-SECRET-6")
logging.getLogger("urllib3.connectionpool").debug('%s://%s:%s "%s %s %s" %s %s', "https", "a.blob", 443, "GET",
    "/c/b?sv=1&sig=URLLIB3-SECRET-8", "HTTP/1.1", 200, 10)
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").info(
    "Request headers:\n    'Authorization': 'Bearer AZCORE-SECRET-9'")
warnings.warn("a warning with api-key=WARN-SECRET-10")
raise RuntimeError("uncaught with AccountKey=UNCAUGHT-SECRET-11;")
'''


def test_install_redacts_every_logger_warnings_and_uncaught_exceptions():
    r = subprocess.run([sys.executable, "-c", INSTALLED], capture_output=True, text=True, timeout=60)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "uncaught with" in out and "prefect sees" in out
    assert "a.blob:443" in out and "a warning with" in out
    for n in range(6, 12):
        assert f"SECRET-{n}" not in out, out
