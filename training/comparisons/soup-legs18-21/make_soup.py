"""The weight soup scored in training/comparisons/README.md ("A soup of the last four legs").

Averages, tensor by tensor, the moving-average weights (``e*``) of legs 18-21's final
checkpoints into a checkpoint that ``rtsep export`` reads (``w*`` and ``e*`` both the soup;
the optimizer and step are leg 21's). Run from the repository root after those legs:
``python training/comparisons/soup-legs18-21/make_soup.py OUT`` (OUT gets config.json too).
"""

import shutil
import sys
from pathlib import Path

import numpy as np

LEGS = ("runs/leg18", "runs/leg19", "runs/leg20", "runs/leg21")

out = Path(sys.argv[1])
out.mkdir(parents=True, exist_ok=False)
saved = [np.load(Path(leg) / "checkpoint.npz") for leg in LEGS]
last = saved[-1]
soup = {}
for key in last.files:
    weight = key[0] in "ew" and key[1:].isdigit()
    soup[key] = np.mean([s["e" + key[1:]] for s in saved], axis=0) if weight else last[key]
np.savez(out / "checkpoint.npz", **soup)
shutil.copy(Path(LEGS[-1]) / "config.json", out / "config.json")
