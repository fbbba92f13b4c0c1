"""Why are freqbias's denoising outputs blurred?  (issue 12; freqbias.md X3, eqs. 19-22, figure G8)

    python bench/denoise_blur.py [--rows 64 --cols 32 --state-size 32] [--crops-train 16 --crops-test 16]
                                 [--train-steps 600 3000] [--lr 0.01 0.1] [--no-faces | --no-natural] [--no-dn] [--png F]
    python bench/denoise_blur.py --display results/freqbias/denoise/trajectories.zarr

The model of eq. 21, yhat = g Conv_beta(K, x) + b with K_l = 2 Re sum_n C_n Bbar_n Abar_n^l and A, Delta
frozen, is *linear* in the trained parameters (g C, b). So the best model of the class on the
study's own objective (MSE(yhat(x), x) on clean training images) is a linear least-squares
problem: one feature per (mode, Re/Im) - the filtered convolution of the image with that
mode's kernel - plus a constant. This script solves it exactly (float64, NumPy) for every
alpha preset and beta of the config and compares, on the test images:

- `ls`: the least-squares optimum of the class (the lowest training loss any amount of
  training could reach; evaluated on the test images);
- `trained S@lr`: the study's training (job.train_shard, seed 0) for S steps at lr (default: the config's);
- `ls-dn`: the same class fitted noisy -> clean (training images with random H/V stripes of
  eq. 19), i.e. the best *denoiser* the class holds, which the study does not train for;
- `wiener`: the best unconstrained LTI filter along the raster scan (length 2L, non-causal,
  per-frequency least squares on the training images), fitted noisy -> clean;
- `mean`: the constant image (the test set's mean value), and `ref` = mse_ref (identity).

Columns: `train` = MSE on the training images for a clean input (the study's training loss over the
whole set; for ls the minimum); `rec` = MSE of the output for a clean input against it (the blur, noise "none");
`H`, `V` = mse_out for horizontal / vertical stripes (eq. 22); `sh`, `sv` = high-frequency
energy of the clean-input output across columns (mean squared difference of neighbouring
columns) and across rows, divided by that of the clean images (1 = as sharp as the clean
image, 0 = flat). All numbers are means over the test images of the chosen sources, in model
units ([-1, 1] images).
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np

from ssmflow import config as cfgmod
from ssmflow import grid
from ssmflow.studies.freqbias import data as fb_data
from ssmflow.studies.freqbias import denoise, geometry
from ssmflow.studies.freqbias import optimum as opt
from ssmflow.studies.freqbias.job import denoise_setup


def shard_spec(args) -> dict:
    """The default config's denoise shard, with the geometry and sizes of the arguments."""
    cfg = cfgmod.load(str(Path(__file__).resolve().parents[1] / "config" / "config.yaml"))
    spec = copy.deepcopy(grid.expand(cfg, "freqbias")["denoise"][0].spec)
    s = spec["settings"]
    s.update(rows=args.rows, cols=args.cols, state_size=args.state_size, crops_train=args.crops_train,
             crops_test=args.crops_test)
    s["sources"] = [src for src in ("faces", "natural") if not getattr(args, f"no_{src}")]
    spec["common"]["seeds"] = 1
    if args.alpha:
        spec["axes"]["alpha"] = args.alpha
    if args.beta is not None:
        spec["axes"]["beta"] = args.beta
    return spec


def wiener(inputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The least-squares LTI filter per rfft bin (n = 2L): H_m = sum conj(Y) X / sum |Y|^2 (with a bias via the mean)."""
    length = inputs.shape[-1]
    yf, xf = np.fft.rfft(inputs, n=2 * length), np.fft.rfft(targets, n=2 * length)
    return np.sum(np.conj(yf) * xf, 0) / np.maximum(np.sum(np.abs(yf) ** 2, 0), 1e-300)


def wiener_apply(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    length = x.shape[-1]
    return np.fft.irfft(np.fft.rfft(x, n=2 * length) * h, n=2 * length)[..., :length]


def hf(img: np.ndarray, rows: int, cols: int) -> tuple[float, float]:
    """Mean squared difference of neighbouring columns and of neighbouring rows."""
    im = img.reshape(-1, rows, cols)
    return float(np.mean(np.diff(im, axis=2) ** 2)), float(np.mean(np.diff(im, axis=1) ** 2))


def train_noise(n: int, rows: int, cols: int, omega_p: float, rng: np.random.Generator) -> np.ndarray:
    """Random stripes of eq. 19 in model units (2 n), one orientation per image (none / H / V in turn)."""
    rho = rng.uniform(0, 0.5, n)
    out = np.zeros((n, rows, cols))
    for i, kind in enumerate(("horizontal", "vertical")):
        pick = np.arange(n) % 3 == i + 1
        out[pick] = 2 * denoise.stripe_noise(kind, rho[pick], rows, cols, omega_p)
    return out.reshape(n, -1)


def trained_params(spec: dict, data, steps: int, lr: float) -> dict:
    """Train the shard (seed 0) for `steps`; per (alpha, beta) its final theta = (g c_re, g c_im, b) and the
    stored reconstructions of the clean examples (to check this script's NumPy model against the study's)."""
    from ssmflow.studies.freqbias import job

    sp = copy.deepcopy(spec)
    sp["settings"]["steps"], sp["settings"]["lr"] = steps, lr
    sp["settings"]["record_points"] = 2
    t0 = time.perf_counter()
    ds = job.train_shard(sp, data)
    print(f"# trained {steps} steps, lr {sp['settings']['lr']}: {time.perf_counter() - t0:.1f} s")
    out = {}
    for a in ds.alpha.values:
        for b in ds.beta.values:
            cell = ds.sel(alpha=a, beta=b, seed=0).isel(step=-1)
            theta = opt.model_theta(cell.c_re.values, cell.c_im.values, float(cell.gain), float(cell.bias))
            out[(str(a), float(b))] = (theta, cell.output.sel(noise="none").values.reshape(len(ds.example), -1),
                                       ds.example_source.values)
    return out


def display_check(store: str) -> None:
    """Is the figure's look a matter of contrast? Per stored example (figure G8's images, seed 0, clean
    input): high-frequency energy across columns and across rows divided by the image's own variance
    (unchanged by any colour stretch), and the image's standard deviation."""
    import xarray as xr

    ds = xr.open_zarr(store).load()

    def stats(im):
        v = im.var(axis=(-2, -1))
        return (np.mean(np.mean(np.diff(im, axis=-1) ** 2, axis=(-2, -1)) / np.maximum(v, 1e-30)),
                np.mean(np.mean(np.diff(im, axis=-2) ** 2, axis=(-2, -1)) / np.maximum(v, 1e-30)), np.mean(np.sqrt(v)))

    print(f"{'image':>16} {'hf_col/var':>10} {'hf_row/var':>10} {'std':>6}")
    print("{:>16} {:10.3f} {:10.3f} {:6.3f}".format("clean", *stats(ds.clean.values)))
    for a in ds.alpha.values:
        for b in ds.beta.values:
            print("{:>16} {:10.3f} {:10.3f} {:6.3f}".format(f"{a}, beta={b:g}",
                                                             *stats(ds.output.sel(alpha=a, beta=b, noise="none").values)))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--cols", type=int, default=32)
    ap.add_argument("--state-size", type=int, default=32)
    ap.add_argument("--crops-train", type=int, default=16)
    ap.add_argument("--crops-test", type=int, default=16)
    ap.add_argument("--lr", type=float, nargs="+", default=None, help="learning rates to train with (default: the config's)")
    ap.add_argument("--train-steps", type=int, nargs="*", default=None, help="default: the config's; none: least squares only")
    ap.add_argument("--alpha", nargs="*", default=None)
    ap.add_argument("--beta", type=float, nargs="*", default=None)
    ap.add_argument("--no-faces", action="store_true")
    ap.add_argument("--no-natural", action="store_true")
    ap.add_argument("--no-dn", action="store_true", help="skip ls-dn (the class fitted noisy -> clean)")
    ap.add_argument("--png", default=None, help="also save the clean-input outputs (beta = 0) of two test images here")
    ap.add_argument("--display", default=None, metavar="STORE",
                    help="only the contrast check of a denoise trajectories.zarr (figure G8's images), then exit")
    args = ap.parse_args()
    if args.display:
        display_check(args.display)
        return

    spec = shard_spec(args)
    s = spec["settings"]
    rows, cols, n_state = s["rows"], s["cols"], s["state_size"]
    length = rows * cols
    geo = denoise_setup(s)
    step, kappa = geo["step"], geo["kappa"]
    t0 = time.perf_counter()
    data = fb_data.denoise_data(spec)
    inp = fb_data.denoise_inputs(data)
    x_train, clean, noises = inp["x_train"], inp["clean"], inp["noises"]
    print(f"# {rows} x {cols} (L = {length}), N = {n_state}, Delta = {step:.4g}, kappa = {kappa:g}, "
          f"{len(x_train)} train / {len(clean)} test images ({', '.join(s['sources'])}); data {time.perf_counter() - t0:.1f} s")
    tau = 1 / (3 * step)
    print(f"# kernel decay (Re a = -3): e-folding {tau:.0f} samples = {tau / cols:.1f} rows = {tau / length:.0%} of the image")

    rng = np.random.default_rng(0)
    y_train = x_train + train_noise(len(x_train), rows, cols, geo["omega_p"], rng)
    h_w = wiener(y_train, x_train)
    var = float(np.mean((clean - clean.mean()) ** 2))
    hf_clean = hf(clean, rows, cols)

    steps_list = [s["steps"]] if args.train_steps is None else args.train_steps
    trained = {f"{n}@{lr:g}": trained_params(spec, data, n, lr) for n in steps_list for lr in (args.lr or [s["lr"]])}

    shown = np.concatenate([np.flatnonzero(inp["test_source"] == src)[:1] for src in s["sources"]])
    panels = [("clean", clean[shown])]

    def metrics(apply, name=None) -> dict:
        out0 = apply(clean)
        if name is not None:
            panels.append((name, out0[shown]))
        h, v = hf(out0, rows, cols)
        return {"rec": float(np.mean((out0 - clean) ** 2)),
                "H": float(np.mean((apply(clean + noises["horizontal"]) - clean) ** 2)),
                "V": float(np.mean((apply(clean + noises["vertical"]) - clean) ** 2)),
                "sh": h / hf_clean[0], "sv": v / hf_clean[1]}

    ref = {"rec": 0.0, "H": float(np.mean(noises["horizontal"] ** 2)), "V": float(np.mean(noises["vertical"] ** 2)),
           "sh": 1.0, "sv": 1.0}
    head = f"{'alpha':>6} {'beta':>5} {'model':>16} {'train':>7} {'rec':>7} {'H':>7} {'V':>7} {'sh':>6} {'sv':>6}"
    print(head)
    print("-" * len(head))

    def line(a, b, name, m, tr=float("nan")):
        print(f"{a:>6} {b:>5g} {name:>16} {tr:7.4f} {m['rec']:7.4f} {m['H']:7.4f} {m['V']:7.4f} {m['sh']:6.3f} {m['sv']:6.3f}")

    line("-", 0, "ref (noisy)", ref)
    line("-", 0, "mean", {"rec": var, "H": var, "V": var, "sh": 0.0, "sv": 0.0})
    line("-", 0, "wiener (LTI)", metrics(lambda x: wiener_apply(x, h_w)))
    for a in spec["axes"]["alpha"]:
        kf = opt.unit_kernel_spectra(n_state, geometry.alpha_value(a, cols), step, length)
        for b in spec["axes"]["beta"]:
            w = opt.sobolev_weights(length, b, kappa)
            theta = opt.fit(x_train, x_train, kf, w)
            fit = opt.apply(x_train, theta, kf, w)
            show = f"{a}, β={b:g}\n" if b == 0 else None
            line(a, b, "ls", metrics(lambda x, t=theta, kf=kf, w=w: opt.apply(x, t, kf, w), show and show + "least squares"),
                 float(np.mean((fit - x_train) ** 2)))
            for n, par in trained.items():
                th, stored, _ = par[(a, float(b))]
                ex = np.concatenate([np.flatnonzero(inp["test_source"] == src)[: s["n_examples"]] for src in s["sources"]])
                mine = opt.apply(clean[ex], th, kf, w)
                err = float(np.max(np.abs(mine - stored)) / np.max(np.abs(stored)))
                assert err < 1e-3, f"NumPy model differs from the study's output by {err:.2e} ({a}, {b})"
                line(a, b, f"trained {n}", metrics(lambda x, t=th, kf=kf, w=w: opt.apply(x, t, kf, w), show and show + f"trained {n}"),
                     float(np.mean((opt.apply(x_train, th, kf, w) - x_train) ** 2)))
            if args.no_dn:
                continue
            theta_dn = opt.fit(y_train, x_train, kf, w)
            line(a, b, "ls-dn", metrics(lambda x, t=theta_dn, kf=kf, w=w: opt.apply(x, t, kf, w)))
    print(f"# total {time.perf_counter() - t0:.1f} s")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(len(shown), len(panels), figsize=(1.6 * len(panels), 2.6 * len(shown) * rows / (2 * cols)),
                                 squeeze=False, layout="constrained")
        for j, (name, imgs) in enumerate(panels):
            for i in range(len(shown)):
                axes[i, j].imshow(imgs[i].reshape(rows, cols), cmap="gray", vmin=-1, vmax=1, interpolation="nearest")
                axes[i, j].set(xticks=[], yticks=[])
            axes[0, j].set_title(name, fontsize="x-small")
        fig.suptitle(f"{rows} x {cols}, N = {n_state}: outputs for a clean input", fontsize="small")
        fig.savefig(args.png, dpi=130)
        print(f"# wrote {args.png}")


if __name__ == "__main__":
    main()
