"""ECG signal adapters (files, synthetic, drills), streaming QRS detection and annotation access."""

from shared.ecg.signal import MODEL_FS, Signal, resample

__all__ = ["MODEL_FS", "Signal", "resample"]
