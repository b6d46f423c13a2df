"""``fin-mlops admin`` / ``keys`` / ``people``: the trust root, personal keys, enrolment.

Only public keys reach the audit store. A person creates their key pair on their own machine
(``keys create``) and hands the administrator the ``.pub.json`` file; the administrator enrols
it with a role, signing the enrolment with the administrator key (``people enrol``). Revoking and
rotating are signed the same way. Key files are named on the command line, never the keys.
Refusals exit with status 3 and are in the audit trail.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from fin_assets.cli.stores import audit_store
from fin_assets.lib.governance.decision_log import record_refusal
from fin_assets.lib.governance.decision_rules import Refusal
from fin_assets.lib.governance.identity import (
    create_trust_root,
    enrol,
    revoke,
    roster_from,
    rotate,
)
from fin_assets.lib.governance.signing import (
    generate_key,
    key_id,
    load_private_key,
    read_public_record,
    write_private_key,
    write_public_record,
)
from fin_resources.locations import admin_key_pin

REFUSED = 3


def public_path(private: Path) -> Path:
    """Where ``keys create`` puts the public record next to a private key file."""
    return private.with_name(private.name + ".pub.json")


def key_file(given: str, variable: str) -> Path:
    """The key file named on the command line, else by ``variable``; ValueError if neither."""
    path = given or os.environ.get(variable, "")
    if not path:
        raise ValueError(f"name your key file with --key/--admin-key FILE or {variable}")
    return Path(path)


def _fail(message: str) -> int:
    print(f"refused: {message}", file=sys.stderr)
    return REFUSED


def cmd_keys_create(args: argparse.Namespace) -> int:
    key = generate_key()
    private = Path(args.out)
    try:
        write_private_key(key, private)
    except ValueError as exc:
        return _fail(str(exc))
    public = write_public_record(key, public_path(private))
    print(f"private key  {private}  (0600; keep it to yourself, it never leaves this machine)")
    print(f"public key   {public}  (give this file to the administrator to be enrolled)")
    print(f"key id       {key_id(key)}")
    return 0


def cmd_admin_init(args: argparse.Namespace) -> int:
    key = generate_key()
    private = Path(args.key_out)
    try:
        write_private_key(key, private)
    except ValueError as exc:
        return _fail(str(exc))
    write_public_record(key, public_path(private))
    with audit_store() as (_engine, chain, policy):
        try:
            admin = create_trust_root(chain, key, args.name, policy, now=datetime.now(UTC))
        except (Refusal, ValueError) as exc:
            private.unlink()
            public_path(private).unlink()
            return _fail(str(exc))
    print(f"administrator {admin.name}, key id {admin.key_id}")
    print(f"private key   {private}  (keep it offline; it alone enrols and revokes people)")
    print(f"pin it in the code location's environment: FIN_ADMIN_KEY_ID={admin.key_id}")
    return 0


def _admin_act(args: argparse.Namespace, attempted: str) -> int:
    """Run one administrator action; refusals are printed, audited and exit 3."""
    now = datetime.now(UTC)
    with audit_store() as (_engine, chain, policy):
        try:
            admin_key = load_private_key(key_file(args.admin_key, "FIN_ADMIN_KEY_FILE"))
            if attempted == "enrol":
                person = enrol(
                    chain,
                    admin_key,
                    args.name,
                    args.role,
                    read_public_record(Path(args.public_key)),
                    policy,
                    now=now,
                    pinned_admin_key_id=admin_key_pin(),
                )
                print(
                    f"enrolled {person.name} as {person.role}, key {person.key_id[:16]}…, "
                    f"valid until {person.expires_at}"
                )
            elif attempted == "revoke":
                person = revoke(
                    chain,
                    admin_key,
                    args.name,
                    args.reason,
                    now=now,
                    pinned_admin_key_id=admin_key_pin(),
                )
                print(f"revoked key {person.key_id[:16]}… of {person.name}: {args.reason}")
            else:
                person = rotate(
                    chain,
                    admin_key,
                    args.name,
                    read_public_record(Path(args.public_key)),
                    policy,
                    now=now,
                    pinned_admin_key_id=admin_key_pin(),
                )
                print(f"rotated {person.name}: new key {person.key_id[:16]}…, old key revoked")
        except Refusal as refusal:
            record_refusal(
                chain,
                refusal,
                actor="cli:people",
                attempted=f"{attempted} {args.name}",
                subject=f"person/{args.name}",
                policy=policy,
            )
            print(f"refused ({refusal.code}): {refusal.message}", file=sys.stderr)
            return REFUSED
        except ValueError as exc:
            return _fail(str(exc))
    return 0


def cmd_people_enrol(args: argparse.Namespace) -> int:
    return _admin_act(args, "enrol")


def cmd_people_revoke(args: argparse.Namespace) -> int:
    return _admin_act(args, "revoke")


def cmd_people_rotate(args: argparse.Namespace) -> int:
    return _admin_act(args, "rotate")


def cmd_people_list(args: argparse.Namespace) -> int:
    with audit_store() as (_engine, chain, _policy):
        roster = roster_from(chain.entries(), pinned_admin_key_id=admin_key_pin())
    now = datetime.now(UTC)
    if roster.admin is not None:
        print(f"administrator {roster.admin.name}, key {roster.admin.key_id[:16]}…")
    print(f"{'name':<20}{'role':<20}{'key':<18}{'status':<10}valid until")
    for person in roster.people():
        problem = person.problem_at(now)
        status = "active" if problem is None else problem[0].removeprefix("key_")
        print(
            f"{person.name:<20}{person.role:<20}{person.key_id[:16]:<18}{status:<10}"
            f"{person.expires_at}"
        )
    for problem_text in roster.problems:
        print(f"IGNORED (not signed by the administrator): {problem_text}", file=sys.stderr)
    return 0
