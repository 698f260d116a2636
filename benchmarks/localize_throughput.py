"""frames/s of srlab localize's two paths on 64x64 frames (2 shared CPU cores)."""
import time

import torch

from srlab.build import build_network
from srlab.config import load_experiment
from srlab.smlm.command import FitterSettings, fit_stack
from srlab.smlm.localize import localize_stack
from srlab.smlm.simulate import SMLMConfig, simulate_smlm

torch.set_num_threads(2)
cfg = SMLMConfig()
acq = simulate_smlm(cfg, frames=64, seed=0)
for name in ("deepstorm_tubes", "deepulm_tubes"):
    for prof in ([], ["profile=quick"]):
        net = build_network(load_experiment(name, prof)).eval()
        localize_stack(net, acq.stack[:4], pixel_size_nm=100, batch_size=32)
        t = time.perf_counter(); localize_stack(net, acq.stack[:32], pixel_size_nm=100, batch_size=32, threshold=0.3)
        print(name, prof or "full", f"{32 / (time.perf_counter() - t):.1f} frames/s", flush=True)
s = FitterSettings(100.0, cfg.sigma_nm, cfg.offset_adu, cfg.adu_per_photon, 2.0)
for n in (1, 2, 3):  # srlab localize --multi-emitter N (default 2)
    t = time.perf_counter(); fit_stack(acq.stack, s, progress=False, max_emitters=n)
    print("gaussfit", f"multi-emitter {n}", f"{64 / (time.perf_counter() - t):.1f} frames/s")
