"""Free local TCP ports for the multi-worker tests (workers on 127.0.0.1)."""
import socket


def free_ports(n):
    """n ports free right now (held together while chosen, so distinct)."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports
