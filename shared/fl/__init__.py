"""Pure federated-learning math over numpy arrays and ints: deltas, clipping, aggregation, DP noise, accounting.

No I/O, no logging, no message or transport types (STYLE-ANCHORS Synthesis rule 1).
"""
