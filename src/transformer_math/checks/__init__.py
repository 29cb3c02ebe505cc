"""Harnesses that hold the library against the world: `calibrate` times the local device, `published` replays
published training and serving measurements, `execution` builds the real models on PyTorch's meta device.

The library never imports them; they import the library (and torch, where they need it, inside functions).
"""
