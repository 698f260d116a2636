"""``srlab calibrate IMAGES... --out experiments/data/NAME.yaml``: run and one-screen summary (its
arguments are defined in :mod:`srlab.cli`, which builds the parser without importing this package)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path


def _line(name: str, est, extra: str = "") -> str:
    return f"    {name:22s} {est.text():26s} {extra}".rstrip()


def _psf_method(est) -> str:
    """Which estimator gave a side's ``psf_fwhm_nm`` (:func:`srlab.calibration.measure`)."""
    from srlab.calibration import SPOT_FIT_METHOD

    return "spot fits" if est.method.startswith(SPOT_FIT_METHOD) else "power spectrum"


def simulated_psf(side, sim) -> str:
    """What the check says of the simulated images' PSF beside the real ``side``'s (``sim``: the same
    measurement on images simulated with the block)."""
    if side.rendering:
        return "not measured on the simulated renderings: they have no localization tables"
    if _psf_method(sim.estimates["psf_fwhm_nm"]) != _psf_method(side.estimates["psf_fwhm_nm"]):
        # dense simulated fields can lack isolated spots where the real images have them, or the other way
        return (f"simulated: {sim.estimates['psf_fwhm_nm'].text()} from the "
                f"{_psf_method(sim.estimates['psf_fwhm_nm'])}, not comparable")
    return f"simulated: {sim.estimates['psf_fwhm_nm'].text()}"


#: Beyond this difference in the share of near-empty pixels (below 0.05 after the 0.1–99.9 % normalization)
#: between the real LR images and the check simulation, the summary says the simulated specimen is denser
#: or sparser than the user's (:func:`density_notes`). Measured: psfmodels' sparse 10× fields read 94 %,
#: srlab's block on them 19 % at ``density_range`` [0.5, 2] (the broad prior's), 66 % at [0.1, 0.4], 88 %
#: at [0.02, 0.1]; realcheck's foreign images and their blocks differ by 0.08–0.21.
DENSITY_NOTE_GAP = 0.3


def density_notes(cal, check: dict) -> list[str]:
    """The summary's line where the check simulation's LR images are far denser or sparser in structure
    than the real ones (:data:`DENSITY_NOTE_GAP`), with the block's key that moves it."""
    sim = check.get("lr")
    if sim is None or cal.lr.rendering:
        return []
    real, simulated = cal.lr.histogram["fraction_below_0.05"], sim.histogram["fraction_below_0.05"]
    if abs(real - simulated) <= DENSITY_NOTE_GAP:
        return []
    low, high = check["spec"].density_range
    denser = real > simulated
    note = (f"LR: {real:.0%} of your pixels are near-empty (below 0.05 after normalization), {simulated:.0%} of "
            f"the simulated ones: the block's specimens are {'denser' if denser else 'sparser'} than yours. "
            f"{'Lower' if denser else 'Raise'} simulation.density_range in the block (now [{low:g}, {high:g}]; on "
            f"sparse fields of another simulator a 10× block's images held 19 % near-empty pixels at [0.5, 2], "
            f"66 % at [0.1, 0.4], 88 % at [0.02, 0.1])")
    return [note]


#: Beyond this relative difference between the block's PSF FWHM and calibrate's reading of it on the check's
#: simulated images, the summary says that the reading depends on the specimens. Measured (docs/calibration-methods.md,
#: *The specimen moves the reading*): srlab's broad prior reads a 174 nm confocal PSF −21 % by its spectrum,
#: single structures from −23 % (mitochondria) to +19 % (pits); realcheck's blocks read −21 % and −23 %
#: (pySTED confocal and STED), widefield −33 % (its spectrum beside a block from spot fits); since photon
#: counts read their gain (e5cea27), pySTED's −33 % and −23 % (the check's two small draws of the prior).
PSF_CHECK_GAP = 0.15


def psf_check_notes(cal, check: dict) -> list[str]:
    """The summary's line where calibrate reads the block's own PSF FWHM far off (:data:`PSF_CHECK_GAP`) on
    the images simulated with it: without it a user takes the simulated-vs-real difference of the summary's
    PSF line for an error of the block, when much of it is the estimator's dependence on the specimens."""
    notes = []
    for side in (cal.lr, cal.hr):
        sim = check.get(side.role) if side is not None else None
        if sim is None or side.rendering:
            continue
        block, read = side.estimates["psf_fwhm_nm"].value, sim.estimates["psf_fwhm_nm"].value
        if not (block > 0 and read > 0) or abs(read / block - 1.0) <= PSF_CHECK_GAP:
            continue
        notes.append(f"{side.role.upper()}: the images simulated with the block read its own PSF FWHM "
                     f"({block:.3g} nm) as {read:.3g} nm ({read / block - 1.0:+.0%}, "
                     f"{_psf_method(sim.estimates['psf_fwhm_nm'])}): that estimate depends on the specimens as well as "
                     f"the PSF (filaments read it, large objects narrower, pits wider; docs/calibration-methods.md, "
                     f"Spectrum-fit PSF), so the simulated and your images' readings differ partly by specimen")
    return notes


def haze_line(block_path: Path, prior: str) -> str | None:
    """The summary's line on the out-of-focus haze of the block written to ``block_path``: it is the specimen
    prior's (block ``prior``'s ``simulation.haze_range``), not measured — a user whose sample has none reads here where to say so,
    and whether ``srlab adapt`` will fit it as background (:func:`srlab.adapt.block_haze`, the decision
    :func:`srlab.adapt.forward_haze` takes from the block). ``None`` where the block simulates no haze.

    Calibrate does not measure haze: out-of-focus light is the specimen's other planes blurred, and in
    unpaired images the specimen's own smooth density varies from field to field more than the haze
    changes it."""
    from omegaconf import OmegaConf

    from srlab.adapt import block_haze
    from srlab.config import _read_yaml

    haze = block_haze(OmegaConf.create(_read_yaml(block_path)))
    if haze is None or haze.amount <= 0:
        return None
    lo, hi = haze.lowest, haze.amount
    adapt = (f"srlab adapt fits it as a background as smooth as σ {haze.sigma_px:.2f} LR px" if haze.fitted
             else f"srlab adapt does not fit it ({haze.reason})")
    amount = f"{hi:g}×" if lo == hi else f"{lo:g}–{hi:g}×"
    return (f"haze: the prior {prior}'s, not measured — an out-of-focus layer {amount} the in-focus density at "
            f"{haze.defocus_nm:g} nm ({haze.lr_name} collects {haze.lr_weight:.2g} of it, {haze.hr_name} "
            f"{haze.hr_weight:.2g}); {adapt}. None in your sample (thin, TIRF, cleared): set haze_range: [0, 0] "
            f"under the block's simulation: (docs/calibration.md, Haze)")


def summary(cal, check: dict, seconds: float, out: Path, figure: Path) -> str:
    """The one-screen report printed by ``srlab calibrate``."""
    from srlab.calibration.block import hr_image_blur_line
    from srlab.calibration.frames import FRAME_GAIN_METHOD
    from srlab.config import EXPERIMENTS_ENV, data_reference
    from srlab.data.simulate import hr_target_for, resolve_modality

    lines = []
    for side in (cal.lr, cal.hr):
        if side is None:
            continue
        e = side.estimates
        sim = check.get(side.role)

        def sv(key: str, sim=sim) -> str:
            return f"(simulated: {sim.estimates[key].text()})" if sim is not None else ""
        g = e["gain_adu_per_photon"].value
        lines.append(f"  {side.role.upper()}: {len(side.images)} {side.modality} image(s), "
                     f"{side.pixel_size_nm:g} nm/px, {side.bit_depth}-bit")
        psf_check = f"({simulated_psf(side, sim)})" if sim is not None else ""
        lines.append(_line("PSF FWHM", e["psf_fwhm_nm"], f"{psf_check} [block: {e['psf_fwhm_nm'].method}]"))
        lines.append(_line("  from the spectrum", e["psf_fwhm_spectrum_nm"]))
        lines.append(_line("  from isolated spots", e["psf_fwhm_spots_nm"]))
        decorr = e["decorrelation_resolution_nm"]
        partial = decorr.method.partition("; ")[2]  # "k of n images have a peak": the rest are noise-dominated
        lines.append(_line("decorrelation res.", decorr,
                           sv("decorrelation_resolution_nm") + (f" [{partial}]" if partial else "")))
        lines.append(_line("single-image FRC", e["frc_resolution_nm"], sv("frc_resolution_nm")))
        gain_from = e["gain_adu_per_photon"].method
        # a gain not fitted on the images is the one the simulated images are measured with (simulate_check)
        sim_gain = "(simulated: measured with it)" if sim is not None and side.noise.gain_given else sv(
            "gain_adu_per_photon")
        lines.append(_line("gain", e["gain_adu_per_photon"], sim_gain + (
            f" [{gain_from.partition(':')[0]}]" if gain_from.startswith(FRAME_GAIN_METHOD) else "")))
        lines.append(_line("offset", e["offset_adu"], f"({e['offset_adu'].method})"))
        lines.append(_line("read noise", e["read_noise_adu"],
                           f"= {e['read_noise_adu'].value / g:.3g} e-" + (" (upper bound)"
                                                                          if not side.noise.offset_given else "")))
        lines.append(_line("signal (99.9th pct)", e["signal_photons"], sv("signal_photons")))
        if "signal_expected_photons" in e:
            lines.append(_line("  block (noise-free)", e["signal_expected_photons"],
                               f"[{e['signal_expected_photons'].method}]"))
        lines.append(_line("background (darkest)", e["background_photons"],
                           f"(tiles: median {e['background_median_photons'].value:.3g}, 10–90 % spread "
                           f"{e['background_variation_photons'].value:.3g})"))
        h = side.histogram
        simh = f", simulated {sim.histogram['fraction_below_0.05']:.0%}" if sim is not None else ""
        lines.append(f"    {'histogram':22s} p0.1 {h['p0.1']:.6g}, p50 {h['p50']:.6g}, p99.9 {h['p99.9']:.6g} ADU; "
                     f"{h['fraction_below_0.05']:.0%} of pixels < 0.05 after normalization{simh}")
    if cal.hr is None:
        lines.append(f"  HR: '{cal.target}' preset at {cal.lr.pixel_size_nm / cal.scale:g} nm/px (no --hr images)")
    if cal.hr_specimens:
        lines.append(f"  specimens: the prior '{cal.prior}' and the {len(cal.hr.paths)} --hr file(s) (simulation.hr_images, "
                     f"half of the training pixels; docs/calibration.md)")
    hr_modality = resolve_modality(cal.target)
    if hr_modality.rendering:  # what the block's networks learn, as the simulator's `auto` decides it
        learned = hr_target_for(hr_modality, cal.hr.paths if cal.hr_specimens else ())
        lines.append("  targets: " + ("the expected renderings (simulation.hr_target: auto)" if learned == "noise_free"
                                      else "the renderings as acquired, like your tables' (without --hr-specimens: "
                                      "the expected ones, which scored better on stormcheck)")
                     + "; docs/calibration.md")
    blur = hr_image_blur_line(cal)
    if blur is not None:
        lines.append(f"  {blur}")
    if cal.channel is not None:
        lines.append(f"  channel: {cal.channel} of the LR files (the block's data.channel: data.real_lr, srlab adapt "
                     f"and srlab predict read that channel of your files)")
    haze = haze_line(out, cal.prior) if out.is_file() else None  # the block as written (run_calibrate writes it first)
    if haze is not None:
        lines.append(f"  {haze}")
    lines += [f"  note: {n}" for n in cal.notes + density_notes(cal, check) + psf_check_notes(cal, check)]
    if "lr_error" in check:
        lines.append(f"  note: check simulation not measurable: {check['lr_error']}")
    head = f"srlab calibrate: x{cal.scale} {cal.lr.modality} -> {cal.target} in {seconds:.1f} s"
    block = data_reference(out)
    use = f"srlab train EXPERIMENT data={block}   (e.g. srlab show edsr_sted data={block})" + (
        "" if block == out.stem else f"; in ./experiments/data/ or ${EXPERIMENTS_ENV}/data/ it is data={out.stem}")
    return "\n".join([head, *lines, f"wrote {out} and {figure}", f"next: {use}"])


def run_calibrate(args: argparse.Namespace) -> int:
    from srlab.calibration import calibrate
    from srlab.calibration.block import output_paths, simulate_check, write_block
    from srlab.calibration.figure import draw
    from srlab.errors import SrlabError

    if args.smlm:
        from srlab.calibration.smlm import run_calibrate_smlm
        return run_calibrate_smlm(args)
    if args.camera or args.em_gain is not None:
        raise SrlabError("--camera and --em-gain are for --smlm stacks (image calibration fits the gain)")
    from srlab.data.io import input_tiffs

    start = time.perf_counter()
    out, figure = output_paths(args.out, overwrite=args.overwrite, example="experiments/data/mycal.yaml")
    # files, folders and quoted globs, as srlab predict takes them
    cal = calibrate(input_tiffs(args.images, what="LR images"), modality=args.modality, target=args.target, hr_paths=args.hr,
                    pixel_size_nm=args.pixel_size_nm, hr_pixel_size_nm=args.hr_pixel_size_nm, scale=args.scale,
                    offset_adu=args.offset_adu, hr_offset_adu=args.hr_offset_adu, prior=args.prior,
                    hr_specimens=args.hr_specimens,
                    dark_paths=args.dark, hr_dark_paths=args.hr_dark, channel=args.channel,
                    hr_channel=args.hr_channel, e_per_adu=args.e_per_adu, hr_e_per_adu=args.hr_e_per_adu,
                    gain_frame_paths=args.gain_frames, hr_gain_frame_paths=args.hr_gain_frames)
    check = {} if args.no_check else simulate_check(cal)
    draw(cal, check, figure)  # the figure first: a block is never written without it
    write_block(cal, out, overwrite=args.overwrite)
    print(summary(cal, check, time.perf_counter() - start, out, figure))
    return 0
