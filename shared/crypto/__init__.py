"""Cryptography for federated learning: Paillier (the only place lightphe is imported), packing, signatures.

Pure functions and frozen dataclasses: no I/O, no logging, no message or transport types.
"""
