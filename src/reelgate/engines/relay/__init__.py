"""Relays to real upstreams (Kling's official API, fal) with the operator's own credentials.

README "Relays (Kling, fal)" describes settings, routing, what is sent and the error mapping.
"""
