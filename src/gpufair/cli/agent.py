"""``gpufair agent``: the node agent that publishes per-GPU topology as node labels.

Runs as a DaemonSet on GPU nodes (node name from the downward API, ``NODE_NAME``), as a Job
with ``--once``, or by hand with ``--dry-run`` to see the labels a machine would get. See
``docs/agent.md``. With ``--device-plugin-proxy`` it also makes kubelet allocate the GPUs
gpufair chose, and with a PodResources socket it confirms what kubelet allocated
(``docs/device-plugin.md``).
"""

from __future__ import annotations

import argparse
import logging
import os
import pathlib
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from gpufair.agent import allocations, discovery

DEFAULT_INTERVAL_SECONDS = 300.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "agent",
        help="discover this node's GPU topology and publish it as node labels",
        description=(
            "Discover this node's GPU topology (NVML, or `nvidia-smi topo -m`) and publish it "
            "as gpufair.dev/ node labels, re-checking on an interval and on SIGHUP."
        ),
    )
    parser.add_argument(
        "--node-name",
        default=os.environ.get("NODE_NAME"),
        help="the Node to label (default: $NODE_NAME, set from the downward API)",
    )
    parser.add_argument(
        "--interval",
        type=_positive_seconds,
        default=DEFAULT_INTERVAL_SECONDS,
        metavar="SECONDS",
        help=f"seconds between checks (default: {DEFAULT_INTERVAL_SECONDS:g})",
    )
    parser.add_argument("--once", action="store_true", help="check and label once, then exit")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the labels this node would get and exit; needs no cluster",
    )
    parser.add_argument(
        "--from-file",
        type=pathlib.Path,
        metavar="TOPO.txt",
        help="read the topology from a saved `nvidia-smi topo -m` output instead of the GPUs",
    )
    parser.add_argument(
        "--source",
        choices=["auto", "nvml", "nvidia-smi"],
        default="auto",
        help="where to discover the topology: NVML, nvidia-smi, or NVML then nvidia-smi (auto)",
    )
    parser.add_argument(
        "--idle-without-gpu",
        action="store_true",
        help="on a node without an NVIDIA GPU, idle and keep re-checking instead of exiting 1",
    )
    proxy = parser.add_argument_group(
        "GPU allocation on the node (docs/device-plugin.md)",
    )
    proxy.add_argument(
        "--device-plugin-proxy",
        action="store_true",
        help="register the GPU resource with kubelet in front of NVIDIA's device plugin and "
        "prefer gpufair's GPUs (needs the PodResources socket)",
    )
    proxy.add_argument(
        "--gpu-resource",
        default="nvidia.com/gpu",
        help="the extended resource NVIDIA's plugin serves (default: nvidia.com/gpu)",
    )
    proxy.add_argument(
        "--kubelet-device-plugin-dir",
        type=pathlib.Path,
        default=pathlib.Path("/var/lib/kubelet/device-plugins"),
        help="kubelet's device-plugin directory (default: /var/lib/kubelet/device-plugins)",
    )
    proxy.add_argument(
        "--nvidia-device-plugin-dir",
        type=pathlib.Path,
        default=pathlib.Path("/var/lib/gpufair/device-plugins"),
        help="the directory NVIDIA's plugin sees as its device-plugin directory; the proxy "
        "serves kubelet.sock there (default: /var/lib/gpufair/device-plugins)",
    )
    proxy.add_argument(
        "--device-id-strategy",
        choices=["uuid", "index"],
        default="uuid",
        help="NVIDIA's plugin --device-id-strategy (default: uuid)",
    )
    proxy.add_argument(
        "--pod-resources-socket",
        default=None,
        metavar="PATH",
        help="kubelet's PodResources socket, to confirm each pod's GPUs "
        "(usually /var/lib/kubelet/pod-resources/kubelet.sock; default: off)",
    )
    proxy.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        help="serve the allocation metrics on this port's /metrics (default: 0, off)",
    )
    proxy.add_argument(
        "--reconcile-interval",
        type=_positive_seconds,
        default=10.0,
        metavar="SECONDS",
        help="seconds between PodResources reads (default: 10)",
    )
    parser.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        default="info",
        help="log verbosity (default: info)",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from gpufair.agent import discovery, publisher, runner

    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("gpufair").setLevel(args.log_level.upper())
    if args.log_level != "debug":  # a failed request is logged once, by the runner
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
    if args.from_file is not None and args.source != "auto":
        return _usage("--from-file and --source exclude each other")
    discover = discovery.Discoverer(source=discovery.Source(args.source), from_file=args.from_file)
    if args.dry_run:
        return _dry_run(discover, args)
    if not args.node_name:
        return _usage("no node to label: pass --node-name or set NODE_NAME")
    if args.device_plugin_proxy and not args.pod_resources_socket:
        return _usage("--device-plugin-proxy needs --pod-resources-socket to confirm allocations")
    try:
        target = publisher.NodeLabelPublisher(api=publisher.connect(), node_name=args.node_name)
    except publisher.PublishError as error:
        print(f"gpufair agent: {error}", file=sys.stderr)
        return int(runner.ExitCode.FAILURE)
    wakeup = runner.Wakeup()
    options = runner.Options(
        interval=args.interval, once=args.once, idle_without_gpu=args.idle_without_gpu
    )
    node_side = None
    publish: Callable[[Mapping[str, str]], dict[str, str | None]] = target.publish
    if (args.device_plugin_proxy or args.pod_resources_socket) and not args.once:
        node_side = _allocations(args, target.api)
        if node_side is None:
            return int(runner.ExitCode.FAILURE)
        if args.device_plugin_proxy:
            publish = _with_proxy_label(target.publish)
    if args.metrics_port:
        import prometheus_client

        prometheus_client.start_http_server(args.metrics_port)
    with wakeup.signals():
        if node_side is not None:
            node_side.start()
        try:
            return int(
                runner.run(discover=discover, publish=publish, options=options, wakeup=wakeup)
            )
        finally:
            if node_side is not None:
                node_side.stop()


def _allocations(args: argparse.Namespace, core: object) -> allocations.Allocations | None:
    """The proxy and reconciler of this node, or ``None`` after printing why not."""
    from gpufair.agent import allocations, nvml_reader, podresources

    strategy = allocations.DeviceIdStrategy(args.device_id_strategy)
    try:
        ids = allocations.device_ids(strategy)
    except (nvml_reader.NvmlUnavailableError, nvml_reader.NvmlQueryError) as error:
        print(f"gpufair agent: cannot name this node's GPUs for kubelet: {error}", file=sys.stderr)
        return None
    return allocations.Allocations(
        options=allocations.Options(
            node=args.node_name,
            resource=args.gpu_resource,
            proxy=args.device_plugin_proxy,
            kubelet_dir=args.kubelet_device_plugin_dir,
            upstream_dir=args.nvidia_device_plugin_dir,
            pod_resources_socket=args.pod_resources_socket,
            interval=args.reconcile_interval,
            strategy=strategy,
        ),
        api=podresources.KubePodApi(core),
        ids=ids,
    )


def _with_proxy_label(
    publish: Callable[[Mapping[str, str]], dict[str, str | None]],
) -> Callable[[Mapping[str, str]], dict[str, str | None]]:
    """Publish the topology labels plus the one saying this node runs the proxy."""
    from gpufair.core import labels

    def publish_with_label(desired: Mapping[str, str]) -> dict[str, str | None]:
        return publish({**desired, labels.PROXY_LABEL: "true"})

    return publish_with_label


def _dry_run(discover: discovery.Discoverer, args: argparse.Namespace) -> int:
    """Print ``key=value`` per label on stdout, what was found on stderr."""
    from gpufair.agent import discovery, runner
    from gpufair.core import labels

    try:
        found = discover()
    except discovery.NoGpuError as error:
        if args.idle_without_gpu:
            print(f"gpufair agent: no NVIDIA GPU ({error}); nothing to label", file=sys.stderr)
            return int(runner.ExitCode.OK)
        print(f"gpufair agent: no NVIDIA GPU on this node: {error}", file=sys.stderr)
        return int(runner.ExitCode.FAILURE)
    except discovery.TopologyFileError as error:
        print(f"gpufair agent: {error}", file=sys.stderr)
        return int(runner.ExitCode.USAGE)
    except discovery.DiscoveryError as error:
        print(f"gpufair agent: {error}", file=sys.stderr)
        return int(runner.ExitCode.FAILURE)
    for note in found.notes:
        print(f"gpufair agent: skipped a source: {note}", file=sys.stderr)
    source = args.from_file if found.source is discovery.Source.FILE else found.source
    print(
        f"gpufair agent: {len(found.topology.gpus)} GPUs from {source}; labels it would set:",
        file=sys.stderr,
    )
    for key, value in labels.to_labels(found.topology).items():
        print(f"{key}={value}")
    return int(runner.ExitCode.OK)


def _usage(message: str) -> int:
    print(f"gpufair agent: {message}", file=sys.stderr)
    return 2


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return seconds
