"""On-watch arrhythmia detection: the `Detector` interface and the rule-based baseline.

The baseline turns the streaming QRS detector's beats into episodes with explicit thresholds
(`BaselineConfig`). Each rule has hysteresis — an episode opens once, stays open while its condition
holds and closes only on a separate exit condition — so one episode gives one event, and a per-kind
refractory period stops a flapping signal from flooding the bus with alerts.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from shared.ecg.qrs import Beat, StreamingQrsDetector
from shared.messages import AlertKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DetectorEvent:
    """An episode the detector raised: what, since when, when noticed, and the numbers behind it."""

    kind: AlertKind
    onset_s: float
    detected_s: float
    hr_bpm: float | None
    evidence: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Detector(Protocol):
    """What the watch agent needs from any detector (rule-based now, learned later)."""

    name: str
    fs: float

    def feed(self, samples_mv: np.ndarray) -> list[DetectorEvent]: ...

    @property
    def heart_rate_bpm(self) -> float | None: ...

    @property
    def beats_in_window(self) -> int: ...


@dataclass(frozen=True)
class BaselineConfig:
    """Thresholds of the baseline rules (see docs/detector.md for how they were chosen)."""

    hr_window_s: float = 10.0  # heart_rate_bpm / beats_in_window look back this far
    # tachycardia: mean rate over the last `tachy_beats` beats
    tachy_beats: int = 8
    tachy_open_bpm: float = 120.0
    tachy_close_bpm: float = 110.0
    # bradycardia: mean rate over the last `brady_beats` beats
    brady_beats: int = 5
    brady_open_bpm: float = 40.0
    brady_close_bpm: float = 45.0
    # pause: no beat for this long (fires while the gap is still open)
    pause_s: float = 2.5
    # irregular rhythm (AF-like): median |ΔRR| / median RR over the last `irregular_beats` narrow beats
    irregular_beats: int = 30
    irregular_min_intervals: int = 16
    irregular_open: float = 0.12
    irregular_close: float = 0.07
    # wide-complex run (VT): ≥ run_beats consecutive wide beats at ≥ run_min_bpm
    run_beats: int = 3
    run_min_bpm: float = 100.0
    wide_lf_ratio_abs: float = 1.2  # a beat is wide if its low/high-band energy ratio is over both this …
    wide_lf_ratio_rel: float = 1.6  # … and this many times the running median of recent beats
    wide_reference_beats: int = 64
    # noise guard: windows with intervals outside this range (impossible rates) are not judged
    min_rr_s: float = 0.2
    max_rr_s: float = 3.0
    # a kind that fired stays quiet this long even if its episode closes and reopens
    refractory_s: float = 30.0


@dataclass
class _Episode:
    open: bool = False
    onset_s: float = 0.0
    last_fired_s: float = -1e9


class BaselineDetector:
    """Rule-based detector over streaming beats; implements `Detector`."""

    name = "baseline-rules-v1"

    def __init__(self, fs: float, config: BaselineConfig | None = None) -> None:
        self.fs = float(fs)
        self.config = config or BaselineConfig()
        self._qrs = StreamingQrsDetector(self.fs)
        keep = max(self.config.irregular_beats, self.config.wide_reference_beats, 64) + 2
        self._beats: deque[Beat] = deque(maxlen=keep)
        self._wide: deque[bool] = deque(maxlen=keep)
        self._episodes: dict[str, _Episode] = {
            k: _Episode() for k in ("tachycardia", "bradycardia", "pause", "irregular_rhythm", "wide_complex_run")
        }
        self._run_start: float | None = None
        self._run_len = 0
        # beats are confirmed with a fixed look-ahead; a gap is only "seen" once that look-ahead has passed
        self._confirm_delay_s = StreamingQrsDetector.REFRACTORY_S + 0.2

    # ---------------------------------------------------------------- Detector
    @property
    def now_s(self) -> float:
        return self._qrs.samples_seen / self.fs

    @property
    def heart_rate_bpm(self) -> float | None:
        rr = self._recent_rr()
        return 60.0 / float(np.median(rr)) if rr.size else None

    @property
    def beats_in_window(self) -> int:
        since = self.now_s - self.config.hr_window_s
        return sum(1 for b in self._beats if b.t_s >= since)

    def feed(self, samples_mv: np.ndarray) -> list[DetectorEvent]:
        events: list[DetectorEvent] = []
        for beat in self._qrs.feed(samples_mv):
            self._on_beat(beat, events)
        self._check_gap(events)
        return events

    # ---------------------------------------------------------------- rules
    def _recent_rr(self) -> np.ndarray:
        since = self.now_s - self.config.hr_window_s
        rr = [b.rr_s for b in self._beats if b.t_s >= since and b.rr_s is not None]
        return np.asarray([r for r in rr if self.config.min_rr_s <= r <= self.config.max_rr_s])

    def _is_wide(self, beat: Beat) -> bool:
        if beat.lf_ratio is None:
            return False
        ref = [b.lf_ratio for b in list(self._beats)[-self.config.wide_reference_beats:] if b.lf_ratio is not None]
        baseline = float(np.median(ref)) if len(ref) >= 8 else beat.lf_ratio
        return beat.lf_ratio >= max(self.config.wide_lf_ratio_abs, self.config.wide_lf_ratio_rel * baseline)

    def _fire(self, kind: AlertKind, onset_s: float, events: list[DetectorEvent], evidence: dict[str, float],
              hr_bpm: float | None = None) -> None:
        """Raise `kind` unless in its refractory; `hr_bpm` is the episode's own rate when the rule knows it."""
        episode = self._episodes[kind]
        episode.open, episode.onset_s = True, onset_s
        if self.now_s - episode.last_fired_s < self.config.refractory_s:
            log.debug("%s reopened inside refractory; not raised", kind)
            return
        episode.last_fired_s = self.now_s
        hr = hr_bpm if hr_bpm is not None else self.heart_rate_bpm
        events.append(DetectorEvent(kind, onset_s, self.now_s, None if hr is None else round(hr, 1), evidence))
        log.info("detector event %s onset=%.1fs detected=%.1fs", kind, onset_s, self.now_s)

    def _close(self, kind: str) -> None:
        self._episodes[kind].open = False

    def _check_gap(self, events: list[DetectorEvent]) -> None:
        if not self._beats:
            return
        last = self._beats[-1].t_s
        gap = self.now_s - self._confirm_delay_s - last
        if gap > self.config.pause_s and not self._episodes["pause"].open:
            self._fire("pause", last, events, {"pause_s": round(gap, 3)})

    def _on_beat(self, beat: Beat, events: list[DetectorEvent]) -> None:
        cfg = self.config
        if self._beats and not self._episodes["pause"].open:
            gap = beat.t_s - self._beats[-1].t_s
            if gap > cfg.pause_s:
                self._fire("pause", self._beats[-1].t_s, events, {"pause_s": round(gap, 3)})
        if self._beats:
            self._close("pause")  # a beat ends any pause
        wide = self._is_wide(beat)
        self._beats.append(beat)
        self._wide.append(wide)
        beats = list(self._beats)
        self._rate_rules(beats, events)
        self._irregular_rule(beats, events)
        self._wide_run_rule(beat, wide, events)

    def _rate_rules(self, beats: list[Beat], events: list[DetectorEvent]) -> None:
        cfg = self.config
        for kind, n, open_hi, bpm_open, bpm_close in (
            ("tachycardia", cfg.tachy_beats, True, cfg.tachy_open_bpm, cfg.tachy_close_bpm),
            ("bradycardia", cfg.brady_beats, False, cfg.brady_open_bpm, cfg.brady_close_bpm),
        ):
            window = beats[-n:]
            rr = [b.rr_s for b in window if b.rr_s is not None]
            if len(rr) < n or any(not cfg.min_rr_s <= r <= cfg.max_rr_s for r in rr):
                continue  # not enough beats, or an impossible interval (noise / missed beats)
            bpm = 60.0 / float(np.mean(rr))
            episode = self._episodes[kind]
            crossed = bpm > bpm_open if open_hi else bpm < bpm_open
            cleared = bpm < bpm_close if open_hi else bpm > bpm_close
            if not episode.open and crossed:
                self._fire(kind, window[0].t_s, events, {"window_bpm": round(bpm, 1), "beats": float(n)},  # type: ignore[arg-type]
                           hr_bpm=bpm)
            elif episode.open and cleared:
                self._close(kind)

    def _irregular_rule(self, beats: list[Beat], events: list[DetectorEvent]) -> None:
        cfg = self.config
        window = beats[-cfg.irregular_beats:]
        wide = list(self._wide)[-cfg.irregular_beats:]
        # intervals between two narrow beats only: ectopic (wide) beats make RR jumps that are not AF
        rr = [
            b.rr_s for i, b in enumerate(window)
            if i > 0 and b.rr_s is not None and not wide[i] and not wide[i - 1]
            and cfg.min_rr_s <= b.rr_s <= cfg.max_rr_s
        ]
        if len(rr) < cfg.irregular_min_intervals:
            return
        rr_arr = np.asarray(rr)
        irregularity = float(np.median(np.abs(np.diff(rr_arr))) / np.median(rr_arr))
        episode = self._episodes["irregular_rhythm"]
        if not episode.open and irregularity > cfg.irregular_open:
            self._fire("irregular_rhythm", window[0].t_s, events,
                       {"rr_irregularity": round(irregularity, 3), "intervals": float(len(rr))})
        elif episode.open and irregularity < cfg.irregular_close:
            self._close("irregular_rhythm")

    def _wide_run_rule(self, beat: Beat, wide: bool, events: list[DetectorEvent]) -> None:
        cfg = self.config
        fast = beat.rr_s is not None and cfg.min_rr_s <= beat.rr_s <= 60.0 / cfg.run_min_bpm
        if wide and (fast or self._run_len == 0):
            if self._run_len == 0:
                self._run_start = beat.t_s
            self._run_len += 1
        else:
            self._run_len = 0
            self._run_start = None
            self._close("wide_complex_run")
            return
        if self._run_len >= cfg.run_beats and not self._episodes["wide_complex_run"].open:
            run_rr = [b.rr_s for b in list(self._beats)[-(self._run_len - 1):] if b.rr_s is not None]
            run_bpm = 60.0 / float(np.mean(run_rr)) if run_rr else None
            self._fire("wide_complex_run", self._run_start or beat.t_s, events, {"run_beats": float(self._run_len)},
                       hr_bpm=run_bpm)


DetectorFactory = Callable[[float], Detector]
_FACTORIES: dict[str, DetectorFactory] = {"baseline": BaselineDetector}


def register_detector(name: str, factory: DetectorFactory) -> None:
    """Let another detector (e.g. the learned one) be chosen by name."""
    _FACTORIES[name] = factory


def make_detector(name: str, fs: float) -> Detector:
    """Build a detector by name at the stream's rate."""
    if name == "learned" and name not in _FACTORIES:
        import watch_agent.learned  # noqa: F401  (registers "learned"; imported lazily: torch is heavy)
    try:
        factory = _FACTORIES[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; known: {sorted(_FACTORIES)}") from None
    return factory(fs)
