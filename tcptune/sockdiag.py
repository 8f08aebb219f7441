"""NETLINK_SOCK_DIAG: the kernel's TCP socket table, dumped as `ss` does. Used only by system.py.

One SOCK_DIAG_BY_FAMILY dump per address family, with an inet_diag_req_v2 whose idiag_states
bitmask selects the states (include/uapi/linux/inet_diag.h, include/uapi/linux/sock_diag.h). The
replies are handed over as raw buffers; tcptune.census parses them without building an object per
socket, which is what keeps 100k sockets fast.
"""

import socket
import struct
from collections.abc import Callable

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH

# The kernel fills at most about 32 KiB per dump message batch (net/netlink/af_netlink.c caps
# max_recvmsg_len); a larger buffer costs nothing and never truncates.
RECV_BYTES = 64 * 1024
# A dump of 100k sockets takes well under a second; a kernel that stops answering is a fault.
TIMEOUT_SECONDS = 30.0

# nlmsghdr (len, type, flags, seq, pid) + inet_diag_req_v2 (family, protocol, ext, pad, states)
# + inet_diag_sockid (48 bytes, all zero: no filter)
_REQUEST = struct.Struct("=IHHIIBBBBI48x")


class Unavailable(Exception):
    """Netlink socket diagnostics cannot be used here (no kernel support, or refused)."""


def dump(family: int, states: int, feed: Callable[[bytes], bool]) -> None:
    """Dump the TCP sockets of one address family whose state bit is set in `states`, handing
    each received buffer to `feed` until it reports the end of the dump (NLMSG_DONE)."""
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as err:
        raise Unavailable(f"cannot open a NETLINK_SOCK_DIAG socket: {err.strerror}") from err
    with sock:
        sock.settimeout(TIMEOUT_SECONDS)
        request = _REQUEST.pack(
            _REQUEST.size,
            SOCK_DIAG_BY_FAMILY,
            NLM_F_REQUEST | NLM_F_DUMP,
            1,
            0,
            family,
            socket.IPPROTO_TCP,
            0,  # idiag_ext: no extensions, the fixed inet_diag_msg has all we need
            0,
            states,
        )
        try:
            sock.sendto(request, (0, 0))
            recv = sock.recv
            while not feed(recv(RECV_BYTES)):
                pass
        except TimeoutError as err:
            raise Unavailable("the kernel did not finish the socket dump in time") from err
        except OSError as err:
            raise Unavailable(f"socket dump failed: {err.strerror or err}") from err
