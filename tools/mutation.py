"""Mutation testing of one security module against its targeted tests (docs/testing.md).

    .venv/bin/python tools/mutation.py codec          # a name from TARGETS
    .venv/bin/python tools/mutation.py --list         # the names, modules and test subsets

mutmut 3 reads its settings from the directory it runs in and copies the code it mutates
into `mutants/` there. So each module gets a scratch directory, `.mutation/<name>/`, holding a
generated `setup.cfg` and links to this tree: the work tree itself is never modified, two
modules can be run one after the other without their settings mixing, and the results stay
in the scratch directory (run `mutmut results` or `mutmut show MUTANT` inside it) until it is
removed. A run prints the tally: killed / total, and the surviving mutants.

Run by hand, not in CI: a module takes minutes, the whole set much longer.
"""
from __future__ import annotations

import argparse
import configparser
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRATCH = ROOT / ".mutation"
# What the tests need besides the packages mutmut copies (it runs them inside mutants/).
ALSO_COPY = ("tests", "docs", "fixtures", "pyproject.toml")

# name -> (module or package to mutate, the tests that exercise it). The subsets are the
# tests that run the module in-process: tests that start `station` in a subprocess import
# the unmutated tree and could never kill a mutant.
TARGETS: dict[str, tuple[str, tuple[str, ...]]] = {
    "codec": ("station/link/codec.py", ("tests/link",)),
    # The codec against its pure tests only (no ptys): minutes where "codec" takes most of an
    # hour on a loaded machine; what survives here may still be killed by "codec", so its
    # score is a lower bound of codec's.
    "codec-unit": ("station/link/codec.py", ("tests/link/test_codec.py", "tests/link/test_codec_boundaries.py",
                                             "tests/link/test_codec_messages.py", "tests/link/test_codec_defaults.py",
                                             "tests/link/test_crc.py", "tests/link/test_protocol_doc.py",
                                             "tests/link/test_codec_compact.py")),
    "chain": ("station/audit/chain.py", ("tests/audit/test_chain.py", "tests/audit/test_event_hash.py",
                                          "tests/audit/test_tamper.py", "tests/audit/test_verify_strength.py",
                                          "tests/audit/test_verify_fast_path.py", "tests/audit/test_verify_messages.py",
                                          "tests/audit/test_database.py")),
    # test_failures.py is left out: its children import the mutated tree without mutmut's
    # settings and fail for that reason alone.
    "verify": ("station/audit/verify.py", ("tests/audit/test_tamper.py", "tests/audit/test_verify_strength.py",
                                            "tests/audit/test_verify_fast_path.py", "tests/audit/test_verify_messages.py",
                                            "tests/audit/test_verify_read_only.py", "tests/audit/test_database.py")),
    "policy": ("station/policy.py", ("tests/ca/test_policy_edges.py", "tests/ca/test_policy_requests.py",
                                      "tests/ca/test_policy_strength.py", "tests/ca/test_refusals.py",
                                      "tests/ca/test_issuance.py")),
    "issuance": ("station/issuance.py", ("tests/ca/test_issuance.py", "tests/ca/test_refusals.py",
                                          "tests/ca/test_hsm_failure.py", "tests/ca/test_issuance_record.py")),
    "profile": ("station/profile.py", ("tests/ca/test_profile_certificate.py", "tests/ca/test_profile_strength.py",
                                        "tests/ca/test_issuance.py", "tests/ca/test_refusals.py")),
    # Every engine test that runs the line in this process. test_identity's one test of two
    # `station` processes is left out: its children import the mutated tree without mutmut's
    # settings (as test_failures.py's do for verify).
    "pipeline": ("station/engine/pipeline.py", ("tests/engine/test_pipeline_strength.py",
                                                 "tests/engine/test_pipeline_checks.py", "tests/engine/test_faults.py",
                                                 "tests/engine/test_rules.py", "tests/engine/test_identity.py",
                                                 "tests/engine/test_line.py", "tests/engine/test_mixed_faults.py",
                                                 "tests/engine/test_durability.py", "tests/engine/test_line_rate.py",
                                                 "tests/ca/test_hsm_failure.py",
                                                 "--deselect=tests/engine/test_identity.py::"
                                                 "test_a_second_station_run_on_a_live_batch_is_refused")),
    "proof": ("station/proof.py", ("tests/engine/test_proof.py", "tests/engine/test_pipeline_checks.py")),
    # The station fixture builds its token in this process (init_station), so token set-up,
    # login and the development CA are reached too; the anchor, CRL and AWS registration tests
    # call the rest of hsm/ca.py and hsm/crl.py in-process.
    "hsm": ("hsm", ("tests/ca/test_token.py", "tests/ca/test_issuance.py", "tests/ca/test_hsm_failure.py",
                    "tests/ca/test_hsm_strength.py", "tests/ca/test_keys.py", "tests/ca/test_ca_import.py",
                    "tests/ca/test_token_lookup.py", "tests/audit/test_anchor.py", "tests/audit/test_anchor_path.py",
                    "tests/qa/test_revocation.py", "tests/aws/test_register_ca.py", "tests/ca/test_ca_certificates.py",
                    "tests/ca/test_softhsm_setup.py", "tests/ca/test_token_sessions.py")),
}


def _scratch(name: str) -> Path:
    """`.mutation/<name>/` with links to the tree and the module's setup.cfg."""
    module, tests = TARGETS[name]
    folder = SCRATCH / name
    folder.mkdir(parents=True, exist_ok=True)
    for entry in ("station", "hsm", *ALSO_COPY):
        link = folder / entry
        if not link.is_symlink():
            link.symlink_to(ROOT / entry)
    settings = configparser.ConfigParser()
    settings["mutmut"] = {
        "source_paths": "\nstation\nhsm",
        # mutmut matches these globs against the paths it walks (station/..., hsm/...).
        "only_mutate": f"\n{module}" if module.endswith(".py") else f"\n{module}/*",
        "also_copy": "\n" + "\n".join(ALSO_COPY),
        "pytest_add_cli_args_test_selection": "\n" + "\n".join(tests),
        "pytest_add_cli_args": "\n-p\nno:cacheprovider",
        # SoftHSM2 must not be used across a fork: each worker starts from a clean process
        # that logs in itself (python-pkcs11 initialises the library once per process).
        "process_isolation": "forkserver",
    }
    with open(folder / "setup.cfg", "w") as fh:
        settings.write(fh)
    return folder


def _tally(folder: Path) -> dict:
    subprocess.run([_mutmut(), "export-cicd-stats"], cwd=folder, check=True, capture_output=True)
    return json.loads((folder / "mutants" / "mutmut-cicd-stats.json").read_text())


def _mutmut() -> str:
    found = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or shutil.which("mutmut")
    if not found:
        sys.exit("mutmut is not installed: run `python3 bootstrap.py pytest -q` once (it is in the test extra)")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", choices=sorted(TARGETS))
    parser.add_argument("--list", action="store_true", help="show the modules and their test subsets")
    parser.add_argument("--max-children", type=int, default=max(1, (os.cpu_count() or 2) // 2),
                        help="parallel workers (default: half the cores; the machine is shared)")
    args = parser.parse_args(argv)
    if args.list or not args.name:
        for name, (module, tests) in TARGETS.items():
            print(f"{name:10} {module:30} {' '.join(tests)}")
        return 0
    folder = _scratch(args.name)
    run = subprocess.run([_mutmut(), "run", "--max-children", str(args.max_children)], cwd=folder)
    if run.returncode != 0:
        return run.returncode
    stats = _tally(folder)
    print(f"{TARGETS[args.name][0]}: killed {stats['killed']} / {stats['total']}; {json.dumps(stats, sort_keys=True)}")
    subprocess.run([_mutmut(), "results"], cwd=folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
