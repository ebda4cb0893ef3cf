"""Synthetic multitrack generator: MIDI parts composed per stem, rendered with FluidSynth and
Hydrogen kits into MUSDB18-HQ-layout folders. Run ``python -m training.synth --help``."""
