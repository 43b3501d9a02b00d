"""What the fake speech-to-text knows: transcripts configured for audio it cannot read itself."""

from __future__ import annotations

import hashlib
import threading

from avito_harness.fakes.audio import read_wav_transcript

__all__ = ["SttState", "UnreadableAudioError"]


class UnreadableAudioError(ValueError):
    """The audio carries no words we can recover and no transcript is configured for it."""


class SttState:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_digest: dict[str, str] = {}
        self.fallback: str | None = None
        self.requests = 0

    def configure(self, *, digest: str | None, text: str) -> None:
        with self._lock:
            if digest is None:
                self.fallback = text
            else:
                self.by_digest[digest.lower()] = text

    def reset(self) -> None:
        with self._lock:
            self.by_digest.clear()
            self.fallback = None
            self.requests = 0

    def transcribe(self, audio: bytes) -> str:
        """The words of ``audio``: from the file itself, else a configured transcript."""
        with self._lock:
            self.requests += 1
            configured = self.by_digest.get(hashlib.sha256(audio).hexdigest())
            fallback = self.fallback
        if configured is not None:
            return configured
        words = read_wav_transcript(audio)
        if words is not None:
            return words
        if fallback is not None:
            return fallback
        raise UnreadableAudioError("Audio file could not be decoded or its format is not supported.")
