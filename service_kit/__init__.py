"""Plumbing shared by every service: gRPC server wiring, errors, settings, time.

Nothing here knows the user domain; it exists so that no service carries its
own copy of the same mechanism.
"""
