"""The scenarios' steps, as a library: install the host, start and follow the guests, one node's netboot.

Shared by the scenario tests, the benchmarks and `./xenlab gateway`; it imports no test.
"""
