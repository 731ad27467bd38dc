"""Secrets out of the recorded command line: what ``run.json`` (and so the warehouse) keeps of argv.

``redact_argv(argv)`` replaces by ``***`` the values of arguments that look like secrets:

- options named like a secret, ``--password X``, ``--db-password=X``, ``--token X``, ``--hf_token=X``,
  ``--api-key X``, ``--client-secret X``, ``--aws-secret-access-key X`` (the name's last word is
  password/passwd/pwd/token/secret/credential(s)/apikey, or its last two words are api/access/secret/
  private/auth + key); ``--tokenizer`` or ``--max-tokens`` are not secrets;
- ``NAME=value`` words whose name ends in KEY, TOKEN, PASSWORD, PASSWD, PWD, SECRET or CREDENTIALS
  (``WANDB_API_KEY=...``, ``HF_TOKEN=...``, ``db.password=...``);
- the password of a URL (``postgres://user:***@host/db``) and URL query values named like a secret
  (``?api_key=***``).

``dlwh collect --no-redact`` keeps the command line as it was.
"""

from __future__ import annotations

import re
from typing import Sequence

MASK = "***"
_LAST = {"password", "passwd", "pwd", "token", "secret", "secrets", "credential", "credentials", "apikey",
         "passphrase"}
_PAIR_FIRST = {"api", "access", "secret", "private", "auth", "signing", "encryption"}
_ENV_LAST = _LAST | {"key"}
_OPTION = re.compile(r"^(--?[A-Za-z][\w.-]*)(=(.*))?$", re.S)
_ASSIGN = re.compile(r"^([A-Za-z_][\w.-]*)=(.*)$", re.S)
_URL_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*):([^/\s@]+)@")
_QUERY = re.compile(r"([?&;])([A-Za-z_][\w.-]*)=([^&;#\s]*)")


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[-_.]+", name.lstrip("-").lower()) if w]


def secret_option(name: str) -> bool:
    """True for an option name (``--db-password``) whose value is a secret."""
    w = _words(name)
    if not w:
        return False
    return w[-1] in _LAST or (len(w) >= 2 and w[-1] == "key" and w[-2] in _PAIR_FIRST)


def secret_name(name: str) -> bool:
    """True for a ``NAME=value`` name (``WANDB_API_KEY``, ``db.password``) whose value is a secret."""
    w = _words(name)
    return bool(w) and w[-1] in _ENV_LAST


def _in_text(arg: str) -> tuple[str, int]:
    """URL passwords and secret-named query values inside one argument."""
    n = 0

    def url(m: re.Match[str]) -> str:
        nonlocal n
        n += 1
        return f"{m.group(1)}:{MASK}@"

    def query(m: re.Match[str]) -> str:
        nonlocal n
        if not secret_name(m.group(2)) or not m.group(3) or m.group(3) == MASK:
            return m.group(0)
        n += 1
        return f"{m.group(1)}{m.group(2)}={MASK}"

    out = _URL_PASSWORD.sub(url, arg)
    if "=" in out and ("?" in out or "&" in out):
        out = _QUERY.sub(query, out)
    return out, n


def redact_argv(argv: Sequence[str]) -> tuple[list[str], int]:
    """(argv with secret values replaced by ``***``, number of values replaced). argv[0] is kept."""
    out: list[str] = [argv[0]] if argv else []
    count = 0
    i = 1
    while i < len(argv):
        arg = argv[i]
        opt = _OPTION.match(arg)
        if opt and secret_option(opt.group(1)):
            if opt.group(2) is not None:  # --password=X
                out.append(f"{opt.group(1)}={MASK}")
                count += 1
            else:  # --password X (unless the next word is another --option)
                out.append(arg)
                if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                    out.append(MASK)
                    count += 1
                    i += 1
            i += 1
            continue
        assign = None if opt else _ASSIGN.match(arg)
        if assign and secret_name(assign.group(1)) and assign.group(2):
            out.append(f"{assign.group(1)}={MASK}")
            count += 1
        else:
            text, n = _in_text(arg)
            out.append(text)
            count += n
        i += 1
    return out, count
