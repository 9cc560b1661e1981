"""``gpufair topology parse FILE -o json|labels``: read an ``nvidia-smi topo -m`` capture.

Prints the per-GPU topology gpufair derives from the matrix (``json``) or the node labels the
node agent would publish for it (``labels``, one ``key=value`` per line, ready for
``kubectl label node NODE $(gpufair topology parse topo.txt -o labels)``). ``FILE`` may be
``-`` for standard input. Unreadable input exits 2 with ``gpufair: FILE:LINE: message``.
"""

from __future__ import annotations

import argparse
import enum
import json
import sys


class Output(enum.StrEnum):
    JSON = "json"
    LABELS = "labels"


STDIN = "-"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser("topology", help="inspect GPU topology")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    parse = actions.add_parser(
        "parse",
        help="read an `nvidia-smi topo -m` matrix and print the per-GPU topology",
        description=(
            "Read the output of `nvidia-smi topo -m` (or `-mp`) and print the NUMA node, "
            "PCIe switch group and NVLink island of every GPU, or the node labels gpufair "
            "publishes for them."
        ),
    )
    parse.add_argument("file", metavar="FILE", help="a saved capture, or - for standard input")
    parse.add_argument(
        "-o",
        "--output",
        choices=[output.value for output in Output],
        default=Output.JSON.value,
        help="json: the topology (default); labels: the node labels, one key=value per line",
    )
    parse.set_defaults(handler=run_parse)


def run_parse(args: argparse.Namespace) -> int:
    from gpufair.core import labels, topology, topology_matrix

    name = "<stdin>" if args.file == STDIN else args.file
    try:
        if args.file == STDIN:
            text = sys.stdin.read()
        else:
            with open(args.file, encoding="utf-8") as capture:
                text = capture.read()
    except OSError as error:
        print(f"gpufair: {name}: {error.strerror or error}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as error:
        print(f"gpufair: {name}: not UTF-8 text ({error.reason})", file=sys.stderr)
        return 2
    try:
        matrix = topology_matrix.parse(text)
    except topology_matrix.TopologyParseError as error:
        print(f"gpufair: {name}:{error.line}: {error.reason}", file=sys.stderr)
        return 2
    node = topology.from_matrix(matrix)
    if Output(args.output) is Output.LABELS:
        for key, value in labels.to_labels(node).items():
            print(f"{key}={value}")
    else:
        print(json.dumps(node.to_json(), indent=2))
    return 0
