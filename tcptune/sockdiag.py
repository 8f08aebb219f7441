"""NETLINK_SOCK_DIAG: the kernel's TCP socket table, dumped as `ss` does. Used only by system.py.

One SOCK_DIAG_BY_FAMILY dump per address family, with an inet_diag_req_v2 whose idiag_states
bitmask selects the states (include/uapi/linux/inet_diag.h, include/uapi/linux/sock_diag.h). The
replies are handed over as raw buffers; tcptune.census counts them a run of equal-size records at
a time, without an object per socket.
"""

import os
import socket
import struct
import time
from collections.abc import Callable

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH

# The kernel builds each reply buffer inside the recv() that asks for it, at most about 32 KiB
# (net/netlink/af_netlink.c caps max_recvmsg_len); a larger buffer costs nothing and never
# truncates.
RECV_BYTES = 64 * 1024
# A dump of a million sockets takes well under a second; a kernel that stops answering is a fault.
TIMEOUT_SECONDS = 30.0

# nlmsghdr (len, type, flags, seq, pid) + inet_diag_req_v2 (family, protocol, ext, pad, states)
# + inet_diag_sockid (48 bytes, all zero: no filter)
_REQUEST = struct.Struct("=IHHIIBBBBI48x")
# struct timeval for SO_RCVTIMEO: the timeout lives in the kernel, so each buffer costs one
# recvfrom() and no poll() (Python's own socket timeout polls before every receive)
_TIMEVAL = struct.Struct("@ll")


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
        request = _REQUEST.pack(
            _REQUEST.size,
            SOCK_DIAG_BY_FAMILY,
            NLM_F_REQUEST | NLM_F_DUMP,
            int.from_bytes(os.urandom(4), "little"),
            0,
            family,
            socket.IPPROTO_TCP,
            0,  # idiag_ext: no extensions, the fixed inet_diag_msg has all we need
            0,
            states,
        )
        deadline = time.monotonic() + TIMEOUT_SECONDS
        try:
            seconds = int(TIMEOUT_SECONDS)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _TIMEVAL.pack(seconds, 0))
            sock.sendto(request, (0, 0))
            receive = sock.recvfrom
            while True:  # bounded: every receive waits at most the timeout, and so does the whole
                data, (sender, _) = receive(RECV_BYTES)
                # only the kernel (port 0) answers a dump: another process's datagram is dropped
                if sender == 0 and feed(data):
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError
        except (TimeoutError, BlockingIOError) as err:  # SO_RCVTIMEO ends a receive with EAGAIN
            raise Unavailable("the kernel did not finish the socket dump in time") from err
        except OSError as err:
            raise Unavailable(f"socket dump failed: {err.strerror or err}") from err
