#!/usr/bin/env python3
"""Recording conditions for synthetic keyword clips: waveform augmentation at synthesis time.

Every function takes a ``numpy.random.Generator``, so a clip's conditions are fixed by its seed.
`record` chains them on one spoken word (16 kHz float32): speed/pitch perturbation by resampling,
room reverberation with a simulated impulse response, a microphone or telephone band limit and
level changes; `noise` draws a background (coloured noise, speech-shaped babble, mains hum or a
mixture) to add at a chosen level.
"""

from __future__ import annotations

import numpy as np
import scipy.signal
import soxr

SAMPLING_RATE = 16000
SPEED = (0.85, 1.15)  # resampling factor: speed and pitch (and formants) move together
SPEED_PROBABILITY = 0.7
RT60 = (0.1, 0.9)  # seconds: reverberation time of the simulated rooms
DIRECT_TO_REVERB_DB = (-6.0, 15.0)
REVERB_PROBABILITY = 0.5
TELEPHONE_PROBABILITY = 0.15
MICROPHONE_PROBABILITY = 0.35
CLIP_PROBABILITY = 0.05  # overdriven input: soft saturation


def perturb_speed(rng: np.random.Generator, speech: np.ndarray) -> np.ndarray:
    """The word played ``factor`` times faster (higher) by resampling, ``factor`` in `SPEED`."""
    factor = rng.uniform(*SPEED)
    return soxr.resample(speech, SAMPLING_RATE * factor, SAMPLING_RATE).astype(np.float32)


def room_impulse_response(rng: np.random.Generator) -> np.ndarray:
    """A simulated room impulse response: a direct path, a few discrete early reflections and an
    exponentially decaying, low-passed noise tail with a random RT60 (`RT60`) and
    direct-to-reverberant ratio (`DIRECT_TO_REVERB_DB`); unit peak."""
    rt60 = rng.uniform(*RT60)
    size = int(rt60 * SAMPLING_RATE)
    time = np.arange(size) / SAMPLING_RATE
    tail = rng.standard_normal(size) * np.exp(-6.9078 * time / rt60)  # -60 dB at rt60
    cutoff = rng.uniform(2000, 7500)  # walls absorb high frequencies
    tail = scipy.signal.sosfilt(
        scipy.signal.butter(2, cutoff, fs=SAMPLING_RATE, output="sos"), tail
    )
    onset = int(rng.uniform(0.002, 0.02) * SAMPLING_RATE)  # the tail starts after the direct path
    tail[:onset] = 0.0
    for _ in range(int(rng.integers(2, 7))):  # early reflections
        delay = int(rng.uniform(0.001, 0.03) * SAMPLING_RATE)
        if delay < size:
            tail[delay] += rng.uniform(-0.7, 0.7)
    tail /= np.sqrt(np.sum(tail**2)) + 1e-9
    direct = 10 ** (rng.uniform(*DIRECT_TO_REVERB_DB) / 20)
    response = np.concatenate([[direct], tail])
    return (response / np.abs(response).max()).astype(np.float32)


def reverberate(rng: np.random.Generator, speech: np.ndarray) -> np.ndarray:
    """The word in a simulated room (`room_impulse_response`), its tail kept."""
    wet = scipy.signal.fftconvolve(speech, room_impulse_response(rng))
    return (wet * (np.abs(speech).max() / (np.abs(wet).max() + 1e-9))).astype(np.float32)


def telephone(rng: np.random.Generator, speech: np.ndarray) -> np.ndarray:
    """A telephone channel: 300-3400 Hz band-pass (edges jittered), 8 kHz and back, and
    sometimes 8-bit mu-law quantisation."""
    low, high = rng.uniform(200, 400), rng.uniform(3000, 3600)
    sos = scipy.signal.butter(4, [low, high], "bandpass", fs=SAMPLING_RATE, output="sos")
    band = soxr.resample(scipy.signal.sosfilt(sos, speech), SAMPLING_RATE, 8000)
    if rng.random() < 0.5:
        peak = np.abs(band).max() + 1e-9
        mu = np.sign(band) * np.log1p(255 * np.abs(band / peak)) / np.log1p(255)
        mu = np.round(mu * 127) / 127
        band = peak * np.sign(mu) * np.expm1(np.abs(mu) * np.log1p(255)) / 255
    return soxr.resample(band, 8000, SAMPLING_RATE).astype(np.float32)


def microphone(rng: np.random.Generator, speech: np.ndarray) -> np.ndarray:
    """A cheap microphone: a high-pass (60-500 Hz), a low-pass (3.5-7.8 kHz) and one resonance
    peak or dip (+-8 dB at 500-5000 Hz)."""
    high_pass = scipy.signal.butter(
        2, rng.uniform(60, 500), "highpass", fs=SAMPLING_RATE, output="sos"
    )
    low_pass = scipy.signal.butter(
        int(rng.integers(2, 7)), rng.uniform(3500, 7800), fs=SAMPLING_RATE, output="sos"
    )
    out = scipy.signal.sosfilt(low_pass, scipy.signal.sosfilt(high_pass, speech))
    return peaking(out, rng.uniform(500, 5000), rng.uniform(-8, 8), rng.uniform(0.7, 3.0))


def peaking(audio: np.ndarray, frequency: float, gain_db: float, q: float) -> np.ndarray:
    """A peaking equaliser (RBJ biquad) at ``frequency`` Hz."""
    a = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * frequency / SAMPLING_RATE
    alpha = np.sin(w0) / (2 * q)
    b = [1 + alpha * a, -2 * np.cos(w0), 1 - alpha * a]
    den = [1 + alpha / a, -2 * np.cos(w0), 1 - alpha / a]
    return scipy.signal.lfilter(b, den, audio).astype(np.float32)


def record(rng: np.random.Generator, speech: np.ndarray) -> np.ndarray:
    """The word as recorded: speed perturbation, reverberation, then a telephone or microphone
    channel, each with its probability; sometimes soft-clipped. Leading/trailing quiet parts of a
    reverberant tail stay (`place_word` trims nothing)."""
    if rng.random() < SPEED_PROBABILITY:
        speech = perturb_speed(rng, speech)
    if rng.random() < REVERB_PROBABILITY:
        speech = reverberate(rng, speech)
    channel = rng.random()
    if channel < TELEPHONE_PROBABILITY:
        speech = telephone(rng, speech)
    elif channel < TELEPHONE_PROBABILITY + MICROPHONE_PROBABILITY:
        speech = microphone(rng, speech)
    if rng.random() < CLIP_PROBABILITY:
        drive = rng.uniform(2, 6)
        speech = np.tanh(drive * speech / (np.abs(speech).max() + 1e-9)) / np.tanh(drive)
    return speech.astype(np.float32)


def coloured_noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit-RMS noise with a 1/f^e spectrum, e in [-1, 2] (blue to brown)."""
    exponent = rng.uniform(-1.0, 2.0)
    spectrum = np.fft.rfft(rng.standard_normal(size))
    frequencies = np.maximum(np.fft.rfftfreq(size), 1.0 / size)
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=size)
    return noise / np.sqrt(np.mean(noise**2))


def babble(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit-RMS speech-shaped babble: 3-8 talkers, each speech-spectrum noise (a 300-3000 Hz
    band) through formant-like resonances, gated by a random 2-7 Hz syllable envelope."""
    total = np.zeros(size)
    time = np.arange(size) / SAMPLING_RATE
    for _ in range(int(rng.integers(3, 9))):
        voice = rng.standard_normal(size)
        sos = scipy.signal.butter(
            2, [rng.uniform(150, 400), rng.uniform(2500, 4500)], "bandpass",
            fs=SAMPLING_RATE, output="sos",
        )  # fmt: skip
        voice = scipy.signal.sosfilt(sos, voice)
        for formant in (rng.uniform(300, 900), rng.uniform(900, 2500)):
            voice = peaking(voice, formant, rng.uniform(6, 15), rng.uniform(2, 6))
        rate = rng.uniform(2, 7)
        envelope = np.clip(np.sin(2 * np.pi * rate * time + rng.uniform(0, 2 * np.pi)), 0, None)
        total += voice * envelope**2 * rng.uniform(0.3, 1.0)
    return total / (np.sqrt(np.mean(total**2)) + 1e-9)


def hum(rng: np.random.Generator, size: int) -> np.ndarray:
    """Unit-RMS mains hum: 50 or 60 Hz with random harmonics, plus a little white noise."""
    base = rng.choice([50.0, 60.0])
    time = np.arange(size) / SAMPLING_RATE
    tone = sum(
        rng.uniform(0, 1) / k * np.sin(2 * np.pi * base * k * time + rng.uniform(0, 2 * np.pi))
        for k in range(1, 8)
    )
    tone = tone + 0.05 * rng.standard_normal(size) * np.sqrt(np.mean(tone**2))
    return tone / (np.sqrt(np.mean(tone**2)) + 1e-9)


def noise(rng: np.random.Generator, size: int) -> np.ndarray:
    """A unit-RMS background: coloured noise, babble, hum, or coloured noise plus one of them."""
    kind = rng.integers(4)
    if kind == 0:
        return coloured_noise(rng, size)
    if kind == 1:
        return babble(rng, size)
    if kind == 2:
        return hum(rng, size)
    mixed = coloured_noise(rng, size) + rng.uniform(0.5, 2.0) * (
        babble(rng, size) if rng.random() < 0.5 else hum(rng, size)
    )
    return mixed / np.sqrt(np.mean(mixed**2))
