"""The private network namespace media tests run in: loopback plus a veth pair on 192.0.2.0/24.

Why: Janus leaves loopback out of ICE, and the tests must never address anything but
this machine. A fresh namespace (``unshare --net``) has no route anywhere; inside it we
add a veth pair with addresses from the documentation range (RFC 5737), limit Janus's
ICE to one end and aiortc's to the other. Setting up refuses to run outside a private
namespace, so a mistake can never reconfigure the host's network.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence

import msgspec


class NamespaceUnavailable(RuntimeError):
    """The private namespace cannot be created or set up here (the message says why)."""


class VethPair(msgspec.Struct, frozen=True, kw_only=True):
    """Both ends live in the same private namespace; Janus takes one, the peers the other."""

    janus_if: str = "bl-janus"
    peer_if: str = "bl-peer"
    janus_address: str = "192.0.2.1"
    peer_address: str = "192.0.2.2"
    prefix: int = 24

    @property
    def network(self) -> str:
        return f"{self.janus_address.rsplit('.', 1)[0]}.0/{self.prefix}"


DEFAULT_VETH = VethPair()


OUTER_NAMESPACE_ENV = "BRANCHLESS_OUTER_NETNS"
"""The parent sets this to its own namespace's inode so the child can prove it is elsewhere."""


def current_namespace_id() -> int:
    return os.stat("/proc/self/ns/net").st_ino


def _loopback_is_down() -> bool:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    result = subprocess.run([ip, "-j", "link", "show", "lo"], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        return False
    links = json.loads(result.stdout or "[]")
    return bool(links) and "UP" not in links[0].get("flags", [])


def in_private_namespace() -> bool:
    """Whether this process's network namespace is not the host's.

    Proof, in order: the parent's namespace id passed in ``BRANCHLESS_OUTER_NETNS``; PID 1's
    namespace (unreadable in some containers); else a fresh namespace's signature, a
    loopback still down (a host's loopback is always up).
    """
    outer = os.environ.get(OUTER_NAMESPACE_ENV)
    if outer:
        return current_namespace_id() != int(outer)
    try:
        return current_namespace_id() != os.stat("/proc/1/ns/net").st_ino
    except PermissionError:
        return _loopback_is_down()


def _ip(*args: str) -> None:
    ip = shutil.which("ip") or "/usr/sbin/ip"
    result = subprocess.run([ip, *args], capture_output=True, text=True, check=False)  # noqa: S603
    if result.returncode != 0:
        raise NamespaceUnavailable(f"ip {' '.join(args)} failed: {result.stderr.strip()}")


def setup_namespace_network(veth: VethPair = DEFAULT_VETH) -> None:
    """Bring loopback up and create the veth pair, in the current (fresh, private) namespace only."""
    if not in_private_namespace():
        raise NamespaceUnavailable("refusing to configure interfaces outside a private network namespace")
    names = {name for _, name in socket.if_nameindex()}
    if names - {"lo"}:
        raise NamespaceUnavailable(f"namespace is not fresh, it has interfaces {sorted(names)}")
    _ip("link", "set", "lo", "up")
    _ip("link", "add", veth.janus_if, "type", "veth", "peer", "name", veth.peer_if)
    _ip("addr", "add", f"{veth.janus_address}/{veth.prefix}", "dev", veth.janus_if)
    _ip("addr", "add", f"{veth.peer_address}/{veth.prefix}", "dev", veth.peer_if)
    _ip("link", "set", veth.janus_if, "up")
    _ip("link", "set", veth.peer_if, "up")
    for path, value in _sysctls(veth).items():
        with open(path, "w") as handle:
            handle.write(value)


def set_link(name: str, *, up: bool) -> None:
    """Take one of the namespace's interfaces down or up (a network blip in the tests).

    Like ``setup_namespace_network``, refuses outside a private namespace.
    """
    if not in_private_namespace():
        raise NamespaceUnavailable("refusing to change interfaces outside a private network namespace")
    _ip("link", "set", name, "up" if up else "down")


def _sysctls(veth: VethPair) -> dict[str, str]:
    """Let each end accept packets whose source is the other end's (local) address.

    Both ends sit in one namespace, so a packet Janus sends out of its interface arrives on
    the peer interface with a source address that is local here; Linux drops such packets
    as martians unless ``accept_local`` is on. These sysctls are per namespace: the host's
    stay untouched.
    """
    settings: dict[str, str] = {}
    for iface in ("all", veth.janus_if, veth.peer_if):
        settings[f"/proc/sys/net/ipv4/conf/{iface}/accept_local"] = "1"
        settings[f"/proc/sys/net/ipv4/conf/{iface}/rp_filter"] = "0"
    return settings


def unshare_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` prefixed so that it runs in a new network namespace of its own."""
    unshare = shutil.which("unshare")
    if unshare is None:
        raise NamespaceUnavailable("unshare (util-linux) is not installed")
    return [unshare, "--net", "--", *argv]


def run_in_private_namespace(
    argv: Sequence[str], *, timeout_s: float, env: Mapping[str, str] | None = None, cwd: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` under ``unshare --net``; ``NamespaceUnavailable`` if the namespace cannot be made.

    The command itself is responsible for calling ``setup_namespace_network()`` first.
    """
    full = unshare_argv(argv)
    env = {**(env if env is not None else os.environ), OUTER_NAMESPACE_ENV: str(current_namespace_id())}
    try:
        result = subprocess.run(  # noqa: S603 - argv built from our own arguments, no shell
            full, capture_output=True, text=True, timeout=timeout_s, env=env, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise TimeoutError(f"{' '.join(argv)} did not finish within {timeout_s:.0f} s") from exc
    if result.returncode != 0 and "unshare failed" in result.stderr:
        raise NamespaceUnavailable(
            f"cannot create a private network namespace (root or CAP_SYS_ADMIN needed): {result.stderr.strip()}"
        )
    return result


def python_module_argv(module: str, *args: str) -> list[str]:
    """This interpreter running ``-m module args`` (so the namespace sees the same virtualenv)."""
    return [sys.executable, "-m", module, *args]


def create_named_namespace(name: str, veth: VethPair = DEFAULT_VETH) -> None:
    """``ip netns add NAME`` with loopback and the veth pair inside (for ``JanusProcess(netns=NAME)``)."""
    _ip("netns", "add", name)
    try:
        for args in (
            ("link", "set", "lo", "up"),
            ("link", "add", veth.janus_if, "type", "veth", "peer", "name", veth.peer_if),
            ("addr", "add", f"{veth.janus_address}/{veth.prefix}", "dev", veth.janus_if),
            ("addr", "add", f"{veth.peer_address}/{veth.prefix}", "dev", veth.peer_if),
            ("link", "set", veth.janus_if, "up"),
            ("link", "set", veth.peer_if, "up"),
        ):
            _ip("-n", name, *args)
        script = "; ".join(f"echo {value} > {path}" for path, value in _sysctls(veth).items())
        _ip("netns", "exec", name, "sh", "-c", script)
    except NamespaceUnavailable:
        delete_named_namespace(name)
        raise


def delete_named_namespace(name: str) -> None:
    """Remove a namespace made by ``create_named_namespace`` (its veth pair goes with it)."""
    _ip("netns", "delete", name)
