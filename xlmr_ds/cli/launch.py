"""`xlmr-ds launch check --hostfile FILE`: is every host ready for a multi-node job? A table, non-zero on a problem."""

from __future__ import annotations

import argparse

from xlmr_ds.cli.arguments import add_command_group, positive_int
from xlmr_ds.cli.table import format_table
from xlmr_ds.errors import XLMRDSError


def register(commands) -> None:
    launch_commands = add_command_group(commands, "launch", "multi-node launches")
    check = launch_commands.add_parser(
        "check", help="reach each host of a hostfile by ssh; compare versions, data and checkpoint directories")
    check.add_argument("--hostfile", required=True, metavar="FILE", help="DeepSpeed hostfile: 'HOST slots=N' lines")
    check.add_argument("--include", default="", metavar="SPEC", help="as deepspeed --include (e.g. node1@node2:0,1)")
    check.add_argument("--exclude", default="", metavar="SPEC", help="as deepspeed --exclude")
    check.add_argument("--data", metavar="DIR", help="an `xlmr-ds binarize` output every host must see")
    check.add_argument("--save", metavar="DIR", help="the checkpoint directory; it must be one directory shared "
                                                     "by all hosts")
    check.add_argument("--ssh-timeout", type=positive_int, default=10, metavar="S",
                       help="seconds to wait for each ssh connection (default 10)")
    check.add_argument("--ssh-port", type=int, metavar="PORT", help="as deepspeed --ssh_port")
    check.set_defaults(run=run_check)


def _cell(answer: dict | None, key: str, reference: dict) -> str:
    if answer is None:
        return "-"
    value = answer.get(key) or "missing"
    return value if answer.get(key) == reference.get(key) else f"{value} *"


def _devices(answer: dict | None) -> str:
    if answer is None:
        return "-"
    devices = answer["devices"]
    if devices.get("error"):
        return "torch broken *"
    return f"{devices['gpus']} GPU(s)" if devices["gpus"] else f"CPU, {devices['cpus']} cores"


def _data_cell(answer: dict | None, problems: list[str]) -> str:
    if answer is None:
        return "-"
    return "ok" if not any("--data" in problem for problem in problems) else "PROBLEM *"


def _save_cell(answer: dict | None, problems: list[str]) -> str:
    if answer is None:
        return "-"
    return "shared" if not any("--save" in problem for problem in problems) else "PROBLEM *"


def run_check(args: argparse.Namespace) -> int:
    from xlmr_ds.launch.check import check_hosts, select_hosts
    from xlmr_ds.launch.hostfile import read_hostfile

    hosts = select_hosts(read_hostfile(args.hostfile), args.include, args.exclude)
    reference, reports, local_problems = check_hosts(hosts, args.data, args.save, args.ssh_timeout, args.ssh_port)
    print(f"this machine ({reference['hostname']}): python {reference['python']}, xlmr-ds {reference['xlmr_ds']}, "
          f"torch {reference['torch']}, deepspeed {reference['deepspeed']}")
    header = ["host", "slots", "devices", "reply", "python", "xlmr-ds", "torch", "deepspeed"]
    header += ["data"] if args.data else []
    header += ["checkpoints"] if args.save else []
    rows, problems = [], []
    for report in reports:
        answer = report.answer
        row = [report.host, str(report.slots), _devices(answer),
               f"{report.seconds:.1f} s" if answer is not None else "FAILED *"]
        row += [_cell(answer, key, reference) for key in ("python", "xlmr_ds", "torch", "deepspeed")]
        row += [_data_cell(answer, report.problems)] if args.data else []
        row += [_save_cell(answer, report.problems)] if args.save else []
        rows.append(tuple(row))
        problems += report.problems
    print(format_table(tuple(header), rows))
    problems += local_problems
    if problems:
        print("problems (* above):")
        for problem in problems:
            print(f"  {problem}")
        failing = [report.host for report in reports if report.problems]
        where = f" on {', '.join(failing)}" if failing else ""
        raise XLMRDSError(f"launch check: {len(problems)} problem(s){where}; see the list above")
    print(f"ready: {len(reports)} host(s), {sum(r.slots for r in reports)} slot(s)")
    return 0
