"""The install server: dnsmasq (DHCP, TFTP, DNS) and an HTTP server, run as an OCI container by runc.

It renders its configuration from the nodes it serves (AII output), runs in the lab's server namespace,
and keeps an event log (leases, TFTP reads, HTTP requests, install acks) that scenarios wait on.
"""
