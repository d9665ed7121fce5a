#!/usr/bin/env python3
"""scripts/prompts/make_prompts.py  The prompts of scripts/ivr.lua

Writes OUTDIR/<name>.wav for each prompt below: 8 kHz mono PCM16 WAV,
tones (no speech synthesizer needed at build time), each a short tune a
caller can tell apart. Replace them with recordings of your own (README:
the sox line). Usage: make_prompts.py OUTDIR
"""
import math
import os
import struct
import sys
import wave

RATE = 8000

# name: [(frequency Hz or 0 for silence, milliseconds)]
PROMPTS = {
    # "welcome: press 1, 2 or 3": a rising chime, then three short beeps
    "welcome": [(523, 200), (0, 40), (659, 200), (0, 40), (784, 300),
                (0, 300), (880, 90), (0, 110), (880, 90), (0, 110),
                (880, 90)],
    # "this is option one": two mid beeps
    "option1": [(440, 250), (0, 120), (440, 250)],
    # "transferring you": a falling glide of three tones
    "transfer": [(784, 180), (659, 180), (523, 400)],
    # "leave your message after the beep" (the beep itself is the
    # server's call:record{beep = true})
    "record": [(659, 200), (0, 60), (523, 300)],
    # "sorry, that is not an option": a low buzz
    "invalid": [(330, 180), (0, 60), (294, 350)],
    # "good-bye": a falling chime
    "goodbye": [(784, 200), (0, 40), (659, 200), (0, 40), (523, 400)],
}


def render(parts, amp=9000, fade_ms=8):
    out = []
    for freq, ms in parts:
        n = RATE * ms // 1000
        fade = RATE * fade_ms // 1000
        for i in range(n):
            if not freq:
                out.append(0)
                continue
            g = min(1.0, i / fade, (n - 1 - i) / fade)
            out.append(int(amp * g * math.sin(2 * math.pi * freq * i /
                                              RATE)))
    return out


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    for name, parts in PROMPTS.items():
        samples = render(parts)
        with wave.open(os.path.join(outdir, name + ".wav"), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(RATE)
            w.writeframes(struct.pack("<%dh" % len(samples), *samples))


if __name__ == "__main__":
    main()
