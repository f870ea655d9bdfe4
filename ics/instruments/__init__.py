"""Instruments: everything that watches training, behind one interface (ics.instruments.base).

probes.py   layer-input distributions and their drift on a fixed probe set (BN paper Fig. 1 b/c)
stats.py    the statistics they use (W1, quantiles, saturation)
"""
from ics.instruments import probes  # noqa: F401  (registers the instrument)
from ics.instruments.base import Batch, Instrument, RunContext, build_instruments, instrument_configs, write_scalars

__all__ = ["Batch", "Instrument", "RunContext", "build_instruments", "instrument_configs", "write_scalars"]
