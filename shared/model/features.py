"""Per-beat features, computed by ONE streaming class used both to build training data and on the watch.

Why one class: a model trained on features computed one way (offline, whole record) and served on
features computed another way (streaming, chunk by chunk) silently loses accuracy. `BeatFeaturizer`
takes the signal in chunks and the beats of the watch's own `StreamingQrsDetector`, and emits one
feature row per beat once everything that row needs has arrived (the next beat, for the next RR, and
0.4 s of signal after the R peak). Offline data building feeds a whole record through it.

Features of one beat:

* waveform (2 × `WAVE_LEN` samples at `MODEL_FS`, −0.256 s … +0.396 s around the R peak):
  channel 0 is the window standardised per beat (minus its median, over its standard deviation);
  channel 1 is channel 0 minus the wearer's running template (median of the previous
  `TEMPLATE_BEATS` standardised beats) — "how unlike this wearer's usual beat is this one", which
  transfers across patients far better than absolute morphology.
* context (`CONTEXT_NAMES`): RR timing — previous RR, next RR, local mean RR (last `LOCAL_BEATS`
  intervals), long-term mean RR (intervals of the last `LONG_S` = 5 min, causal) — and log-ratios of
  those normalised by the wearer's own rhythm (prev/local, next/local, prev/long, next/long,
  local/long, next/prev). Prematurity relative to the wearer's own rhythm is what separates S from N
  across patients. Two morphology ratios against the wearer's running medians close the vector:
  log(lf_ratio / median) (QRS low/high-band energy, wide beats are slow) and log(amplitude / median).

Everything is causal except `next RR` (one beat of look-ahead: a beat is classified when the next one
is detected, ~0.3–1.5 s later).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

import numpy as np

from shared.ecg.qrs import Beat
from shared.ecg.signal import MODEL_FS

#: Bump when anything below changes: cached beat arrays are keyed by it.
FEATURES_VERSION = "f2"

PRE = 64  # samples at MODEL_FS before the R peak (0.256 s)
POST = 99  # samples after it (0.396 s)
WAVE_LEN = PRE + 1 + POST
WAVE_CHANNELS = 2
TEMPLATE_BEATS = 32
LOCAL_BEATS = 10
LONG_S = 300.0
MORPH_BEATS = 64
RR_MIN, RR_MAX = 0.15, 3.0

CONTEXT_NAMES: tuple[str, ...] = (
    "pre_rr_s", "post_rr_s", "local_rr_s", "long_rr_s",
    "log_pre_local", "log_post_local", "log_pre_long", "log_post_long", "log_local_long", "log_post_pre",
    "log_lf_rel", "log_amp_rel",
)
N_CONTEXT = len(CONTEXT_NAMES)


@dataclass(frozen=True)
class BeatFeatures:
    """One beat's features, with the detector's beat it came from."""

    beat: Beat
    wave: np.ndarray  # (WAVE_CHANNELS, WAVE_LEN) float32
    context: np.ndarray  # (N_CONTEXT,) float32


def _clip_rr(rr: float) -> float:
    return min(RR_MAX, max(RR_MIN, rr))


def _log_ratio(a: float, b: float) -> float:
    return math.log(max(a, 1e-6) / max(b, 1e-6))


class BeatFeaturizer:
    """Streaming feature extraction: `push_samples`, `push_beat`, then `pop_ready` (or `flush` at the end).

    `fs` is the stream's rate; windows are taken on the `MODEL_FS` grid (exact indexing at 250 Hz,
    linear interpolation otherwise), so a model trained at 250 Hz sees the same window at any rate.
    """

    def __init__(self, fs: float, *, keep_s: float = 12.0) -> None:
        if not fs > 0:
            raise ValueError(f"sampling rate must be positive, got {fs!r}")
        self.fs = float(fs)
        self._keep = max(int(keep_s * self.fs), int(4 * self.fs))
        self._buf = np.zeros(0)
        self._buf_start = 0  # absolute index of _buf[0]
        self._n_seen = 0
        self._pending: deque[Beat] = deque()
        self._prev_emitted: Beat | None = None
        self._rr_local: deque[float] = deque(maxlen=LOCAL_BEATS)
        self._rr_long: deque[tuple[float, float]] = deque()
        self._rr_long_sum = 0.0
        self._templates: deque[np.ndarray] = deque(maxlen=TEMPLATE_BEATS)
        self._lf: deque[float] = deque(maxlen=MORPH_BEATS)
        self._amp: deque[float] = deque(maxlen=MORPH_BEATS)
        self._offsets = np.arange(-PRE, POST + 1) * (self.fs / MODEL_FS)
        self._exact = abs(self.fs - MODEL_FS) < 1e-9

    # ---------------------------------------------------------------- input
    def push_samples(self, chunk_mv: np.ndarray) -> None:
        x = np.nan_to_num(np.asarray(chunk_mv, dtype=float).ravel(), nan=0.0, posinf=0.0, neginf=0.0)
        self._buf = np.concatenate([self._buf, x])
        self._n_seen += x.size
        drop = len(self._buf) - self._keep
        if drop > 0:
            self._buf = self._buf[drop:]
            self._buf_start += drop

    def push_beat(self, beat: Beat) -> None:
        self._pending.append(beat)

    # ---------------------------------------------------------------- output
    def pop_ready(self) -> list[BeatFeatures]:
        """Features of every pending beat whose next beat and post-R window have arrived."""
        out: list[BeatFeatures] = []
        while len(self._pending) >= 2:
            beat, nxt = self._pending[0], self._pending[1]
            if beat.sample + self._offsets[-1] + 1 >= self._n_seen:
                break
            self._pending.popleft()
            out.append(self._emit(beat, (nxt.sample - beat.sample) / self.fs))
        return out

    def flush(self) -> list[BeatFeatures]:
        """End of stream: emit what is left (the last beat's next RR is taken as the local mean)."""
        out = self.pop_ready()
        while self._pending:
            beat = self._pending.popleft()
            if len(self._pending) >= 1:
                post = (self._pending[0].sample - beat.sample) / self.fs
            else:
                post = float(np.mean(self._rr_local)) if self._rr_local else 0.8
            out.append(self._emit(beat, post))
        return out

    # ---------------------------------------------------------------- internals
    def _window(self, sample: int) -> np.ndarray:
        pos = sample - self._buf_start + self._offsets
        n = len(self._buf)
        if self._exact:
            idx = np.clip(np.round(pos).astype(int), 0, max(0, n - 1))
            return self._buf[idx] if n else np.zeros(WAVE_LEN)
        return np.interp(pos, np.arange(n), self._buf) if n else np.zeros(WAVE_LEN)

    def _emit(self, beat: Beat, post_rr: float) -> BeatFeatures:
        w = self._window(beat.sample)
        w = w - np.median(w)
        w = np.clip(w / (np.std(w) + 1e-3), -10.0, 10.0)
        template = np.median(np.stack(self._templates), axis=0) if len(self._templates) >= 4 else w
        wave = np.stack([w, w - template]).astype(np.float32)
        self._templates.append(w)

        if self._prev_emitted is not None:
            pre = _clip_rr((beat.sample - self._prev_emitted.sample) / self.fs)
        else:
            pre = _clip_rr(post_rr)
        post = _clip_rr(post_rr)
        t = beat.sample / self.fs
        self._rr_local.append(pre)
        self._rr_long.append((t, pre))
        self._rr_long_sum += pre
        while self._rr_long and self._rr_long[0][0] < t - LONG_S:
            self._rr_long_sum -= self._rr_long.popleft()[1]
        local = float(np.mean(self._rr_local))
        long = self._rr_long_sum / len(self._rr_long)

        lf = beat.lf_ratio if beat.lf_ratio is not None and beat.lf_ratio > 0 else None
        lf_ref = float(np.median(self._lf)) if len(self._lf) >= 4 else (lf or 1.0)
        lf_rel = _log_ratio(lf, lf_ref) if lf is not None else 0.0
        amp_ref = float(np.median(self._amp)) if len(self._amp) >= 4 else beat.amplitude
        amp_rel = _log_ratio(beat.amplitude, amp_ref)
        if lf is not None:
            self._lf.append(lf)
        self._amp.append(beat.amplitude)

        context = np.array([
            pre, post, local, long,
            _log_ratio(pre, local), _log_ratio(post, local), _log_ratio(pre, long), _log_ratio(post, long),
            _log_ratio(local, long), _log_ratio(post, pre),
            float(np.clip(lf_rel, -4, 4)), float(np.clip(amp_rel, -4, 4)),
        ], dtype=np.float32)
        self._prev_emitted = beat
        return BeatFeatures(beat, wave, context)
