"""Strip analysis shared by every hop: the phone reads alert strips with it, the edge can stand in for an
absent phone, and the cloud re-reads the stored strip with the same code for its report (ADR 0010).
"""
