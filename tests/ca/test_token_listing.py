"""What an operator is told when the configured token label is not on the token: the tokens
that are, by label, and never SoftHSM2's free slot (an uninitialised token labelled "").

Run in a child Python: each case needs its own softhsm2.conf, and loading a second
configuration re-initialises the PKCS#11 library, which would end the session every other
test in this process shares (tests/ca/test_token_sessions.py)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from hsm import softhsm

CHILD = textwrap.dedent("""
    import sys
    from pathlib import Path
    from hsm import softhsm
    from hsm.errors import TokenNotFound
    from hsm.token import Token
    try:
        Token(softhsm.find_module(), "gamma", "any-pin", softhsm_conf=Path(sys.argv[1]))
    except TokenNotFound as exc:
        print(exc)
""")


def refusal_for(conf) -> str:
    out = subprocess.run([sys.executable, "-c", CHILD, str(conf)], capture_output=True, text=True, check=True,
                         timeout=60)
    return out.stdout.strip()


def test_the_initialised_tokens_are_listed_and_the_free_slot_is_not(tmp_path):
    conf = tmp_path / "softhsm2.conf"
    softhsm.write_config(conf, tmp_path / "tokens")
    softhsm.init_token(conf, "alpha", so_pin="so-pin-1234", user_pin="user-pin-1")
    softhsm.init_token(conf, "beta", so_pin="so-pin-1234", user_pin="user-pin-2")
    assert refusal_for(conf) == "no token labelled 'gamma' in libsofthsm2.so (tokens present: 'alpha', 'beta')"


def test_a_token_directory_with_no_token_says_none(tmp_path):
    conf = tmp_path / "softhsm2.conf"
    softhsm.write_config(conf, tmp_path / "tokens")
    assert refusal_for(conf) == "no token labelled 'gamma' in libsofthsm2.so (tokens present: none)"
