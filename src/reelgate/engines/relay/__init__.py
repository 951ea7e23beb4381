"""Relays to real upstreams (Kling's official API, fal) with the operator's own credentials.

docs/engines/relays.md describes settings, routing, what is sent and the error mapping.
"""
