"""``python -m gtx_ray certs init|issue|show``: create the 2030.5 certificates, issue one device
certificate for an outside device or test tool, show a certificate's LFDI and SFDI.
``certs_main(argv)`` returns the exit code: 0 done, 2 usage or configuration error (one line on
stderr, never a traceback)."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

from gtx_ray.errors import ConfigError
from gtx_ray.ieee2030_5 import pki

DEFAULT_CONFIG = Path("config/utcc_campus_config.json")
PROG = "python -m gtx_ray certs"


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line instead of usage + message
        raise _UsageError(f"{self.prog}: {message} (see --help)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="IEEE 2030.5 certificates for the simulator.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    init = sub.add_parser(
        "init",
        help="create a SERCA → MICA chain, a server certificate and one certificate per meter",
        description="Create (or complete) a certificates directory. Existing files are kept "
        "unless --force.",
    )
    init.add_argument("--dir", type=Path, default=Path("certs"), help="default: ./certs")
    init.add_argument("--force", action="store_true", help="replace existing certificates")
    init.add_argument(
        "--config-file",
        type=Path,
        default=DEFAULT_CONFIG,
        help=f"campus configuration (default: {DEFAULT_CONFIG})",
    )
    init.add_argument(
        "--meters", type=int, help="N generated meters instead of the campus's own meters"
    )
    init.add_argument("--seed", type=int, default=0, help="fleet seed with --meters (default 0)")
    init.add_argument(
        "--server-name",
        action="append",
        default=[],
        metavar="NAME",
        help="extra host name or IP for the server certificate (repeatable)",
    )
    issue = sub.add_parser(
        "issue",
        help="issue a device certificate for an outside device or test tool",
        description="Write issued/NAME.pem (device certificate + MICA + SERCA) and "
        "issued/NAME.key under --dir, signed by the MICA of `certs init`, and print its LFDI "
        "and SFDI.",
    )
    issue.add_argument("name", help="1-64 letters, digits, '.', '_', '-' (the file name)")
    issue.add_argument("--dir", type=Path, default=Path("certs"), help="default: ./certs")
    issue.add_argument("--force", action="store_true", help="replace an existing NAME")
    show = sub.add_parser("show", help="print a certificate's LFDI and SFDI")
    show.add_argument("file", type=Path, help="PEM or DER; a chain file shows its first cert")
    show.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _meter_ids(config_file: Path, meters: int | None, seed: int) -> list[str]:
    from gtx_ray.fleet import generate_fleet, load_campus

    campus = load_campus(config_file)
    if meters is None:
        return [m.meter_id for m in campus.meters]
    if meters < 1:
        raise ConfigError(f"--meters must be at least 1, got {meters}")
    return [str(m) for m in generate_fleet(campus, meters, seed).meter_id]


def _init(args: argparse.Namespace) -> int:
    ids = _meter_ids(args.config_file, args.meters, args.seed)
    report = pki.init_certs(args.dir, ids, args.server_name, force=args.force)
    layout = pki.CertsLayout(report.certs_dir)
    print(
        f"{report.certs_dir}: {report.created} certificates created, {report.kept} kept; "
        f"{report.devices} meters listed in {layout.devices_index.name}; "
        f"trust anchor {layout.serca_cert.name}"
    )
    return 0


def _issue(args: argparse.Namespace) -> int:
    issued = pki.issue_device_cert(args.dir, args.name, force=args.force)
    print(f"LFDI: {issued.identity.lfdi}")
    print(f"SFDI: {issued.identity.sfdi}")
    print(f"certificate chain: {issued.cert_chain}")
    print(f"key: {issued.key}")
    print(f"trust anchor: {pki.CertsLayout(args.dir).serca_cert}")
    return 0


def describe(path: Path) -> dict[str, object]:
    """LFDI, SFDI and the main fields of the first certificate in ``path``."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        cert = pki.load_first_certificate(data)
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    ident = pki.identity_of(cert)
    return {
        "file": str(path),
        "lfdi": ident.lfdi,
        "sfdi": ident.sfdi,
        "subject": cert.subject.rfc4514_string(),
        "issuer": cert.issuer.rfc4514_string(),
        "serial": f"{cert.serial_number:X}",
        "not_after": cert.not_valid_after_utc.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hardware_serial": pki.hardware_serial(cert),
    }


def _show(args: argparse.Namespace) -> int:
    info = describe(args.file)
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"LFDI: {info['lfdi']}")
    print(f"SFDI: {info['sfdi']}")
    for key in ("subject", "issuer", "serial", "not_after", "hardware_serial"):
        if info[key]:
            print(f"{key}: {info[key]}")
    return 0


def certs_main(argv: list[str]) -> int:
    """Run ``certs ARGS``; 0 on success, 2 on a usage or configuration error."""
    try:
        args = _parser().parse_args(argv)
        commands = {"init": _init, "issue": _issue, "show": _show}
        return commands[args.command](args)
    except _UsageError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except ConfigError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{PROG}: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
