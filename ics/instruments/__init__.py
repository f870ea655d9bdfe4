"""Instruments: everything that watches training, behind one interface (ics.instruments.base).

probes.py     layer-input distributions and their drift on a fixed probe set (BN paper Fig. 1 b/c)
grad_ics.py   gradient-based ICS (Santurkar et al. 2018, Def. 2.1)
landscape.py  loss-landscape smoothness along the step, top Hessian eigenvalue (ibid. §3.2)
bn_stats.py   BN inference statistics: EMA vs precise (population) vs batch (BN paper Alg. 2)
bn_noise.py   BN's own step-to-step noise, r and d of Batch Renormalization (Ioffe 2017)
weights.py    weight-row norms, effective learning rate, angular updates (BN paper §3.3)
stats.py      the distribution statistics the probes use (W1, quantiles, saturation)
functional.py gradients and optimiser steps on copies (never the live model)
"""

import importlib
import pkgutil

from ics.instruments.base import Batch, Instrument, RunContext, build_instruments, instrument_configs, write_scalars

__all__ = ["Batch", "Instrument", "RunContext", "build_instruments", "instrument_configs", "write_scalars"]

# every module here registers what it defines (@INSTRUMENTS.register): a new instrument is a new module,
# found here without an import list
for _m in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_m.name}")
