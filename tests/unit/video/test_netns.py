"""The namespace guard: media set-up runs only in a private network namespace, never on the host's."""

from __future__ import annotations

import sys

import pytest

from video.media.netns import (
    NamespaceUnavailable,
    in_private_namespace,
    run_in_private_namespace,
    setup_namespace_network,
)


def test_this_process_is_on_the_hosts_namespace_and_setup_refuses() -> None:
    assert in_private_namespace() is False
    with pytest.raises(NamespaceUnavailable, match="refusing"):
        setup_namespace_network()


def test_a_child_under_unshare_is_private_and_gets_exactly_lo_and_the_veth_pair() -> None:
    code = (
        "import socket; from video.media.netns import in_private_namespace, setup_namespace_network;"
        "print(in_private_namespace()); setup_namespace_network();"
        "print(sorted(n for _, n in socket.if_nameindex()))"
    )
    result = run_in_private_namespace([sys.executable, "-c", code], timeout_s=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["True", "['bl-janus', 'bl-peer', 'lo']"]
