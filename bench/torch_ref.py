#!/usr/bin/python3
"""PyTorch reference for graphrun's autoencoders on Fashion-MNIST (quality + speed).

Models: ae, dae, sae, vae, conv_vae (see bench/TORCH_REF.md). Losses are per sample, in nats:
Bernoulli likelihood = BCE-with-logits summed over the 784 pixels, averaged over the batch.
"""
import argparse
import ctypes
import gzip
import json
import os
import resource
import struct
import sys
import time

try:
    import numpy as np
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    # Debian's python3-torch lives in /usr/bin/python3's dist-packages; a pyenv/venv
    # "python3" earlier on PATH cannot see it.
    if os.path.realpath(sys.executable) != os.path.realpath("/usr/bin/python3") \
            and os.path.exists("/usr/bin/python3"):
        print("torch_ref: torch not importable from %s, re-running with /usr/bin/python3"
              % sys.executable, file=sys.stderr)
        os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
    sys.exit("torch_ref: needs PyTorch and numpy: apt-get install python3-torch python3-numpy")

DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"
IDX_IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions


def read_idx_images(path, limit=0):
    """Read an IDX3 ubyte image file (gzip or plain) -> writable uint8 array [N, rows*cols].

    Pixels are read straight into the final array (no second copy); limit > 0 reads only
    the first `limit` images."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
        header = f.read(16)
        if len(header) < 16:
            raise ValueError("%s: truncated IDX header" % path)
        magic, n, rows, cols = struct.unpack(">IIII", header)
        if magic != IDX_IMAGES_MAGIC:
            raise ValueError("%s: bad IDX magic 0x%08x (want 0x%08x)" % (path, magic, IDX_IMAGES_MAGIC))
        if limit:
            n = min(n, limit)
        out = np.empty((n, rows * cols), dtype=np.uint8)
        buf, got = memoryview(out).cast("B"), 0
        while got < out.size:  # readinto may return short counts
            k = f.readinto(buf[got:])
            if not k:
                raise ValueError("%s: file shorter than its header (%dx%dx%d)" % (path, n, rows, cols))
            got += k
    return out


def find_idx(data_dir, stem):
    for name in (stem + ".gz", stem):
        p = os.path.join(data_dir, name)
        if os.path.exists(p):
            return p
    sys.exit("torch_ref: Fashion-MNIST file %s[.gz] not found in %s\n"
             "  install it with: apt-get install dataset-fashion-mnist  (or pass --data DIR)"
             % (stem, data_dir))


# ---------------------------------------------------------------- models
def bce_per_sample(logits, x):
    return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / x.shape[0]


class AE(nn.Module):
    """784 -> 400 ReLU -> 32 code -> 400 ReLU -> 784 logits.

    The code is linear, except sae with the KL penalty (sigmoid: KL needs rates in (0, 1))."""

    def __init__(self, args, sigmoid_code=False):
        super().__init__()
        self.args, self.sigmoid_code = args, sigmoid_code
        self.enc = nn.Sequential(nn.Linear(784, 400), nn.ReLU(), nn.Linear(400, 32))
        self.dec = nn.Sequential(nn.Linear(32, 400), nn.ReLU(), nn.Linear(400, 784))

    def corrupt(self, x):
        a = self.args
        if a.model != "dae" or not self.training:
            return x
        if a.noise == "mask":  # zero a fraction noise_level of the inputs, no rescaling
            return x * (torch.rand_like(x) >= a.noise_level).to(x.dtype)
        return x + a.noise_level * torch.randn_like(x)  # gaussian, not clipped

    def forward(self, x, beta_scale=1.0):
        code = self.enc(self.corrupt(x))
        if self.sigmoid_code:
            code = torch.sigmoid(code)
        recon = bce_per_sample(self.dec(code), x)
        if self.args.model != "sae":
            return recon, {"recon": recon}
        a = self.args
        if a.sparsity == "kl":  # beta * sum_j KL(rho || mean over batch of code_j)
            rho_hat = code.mean(0).clamp(1e-6, 1 - 1e-6)
            rho = a.rho
            sp = a.beta * (rho * torch.log(rho / rho_hat)
                           + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))).sum()
        else:  # lambda * mean over batch of sum_j |code_j|
            sp = a.l1_lambda * code.abs().sum(1).mean()
        # a batch statistic, weighted as in the loss; each sample carries an equal share
        return recon + sp, {"recon": recon, "sparsity": sp}


class VAE(nn.Module):
    """Kingma & Welling, as in the classic PyTorch example (z dim 20)."""

    def __init__(self, args):
        super().__init__()
        self.args = args
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)
        self.eps_gen = None  # set for the test pass: fixed-seed z samples

    def encode(self, x):
        h = F.relu(self.fc1(x))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return self.fc4(F.relu(self.fc3(z)))

    def forward(self, x, beta_scale=1.0):
        mu, logvar = self.encode(x)
        if self.eps_gen is None:
            eps = torch.randn_like(mu)
        else:
            eps = torch.randn(mu.shape, generator=self.eps_gen, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps  # one sample of z per image, train and test
        recon = bce_per_sample(self.decode(z), x)
        kl = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()) / x.shape[0]
        return recon + self.args.beta * beta_scale * kl, {"recon": recon, "kl": kl}


class ConvVAE(VAE):
    """models/conv_vae.graph: convs 1->32->64 (3x3, stride 2, padding 1), dense 3136->256, heads
    of 20; dense 20->3136, transposed convs 64->64->32->1 (strides 2, 2, 1, output padding 1, 1,
    0), ReLU between, Bernoulli likelihood. 953,705 parameters."""

    def __init__(self, args):
        nn.Module.__init__(self)
        self.args = args
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1),
                                 nn.ReLU(), nn.Flatten(), nn.Linear(3136, 256), nn.ReLU())
        self.fc21, self.fc22 = nn.Linear(256, 20), nn.Linear(256, 20)
        self.dec = nn.Sequential(nn.Linear(20, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                                 nn.ConvTranspose2d(64, 64, 3, 2, 1, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(64, 32, 3, 2, 1, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(32, 1, 3, 1, 1, 0), nn.Flatten())
        self.eps_gen = None

    def encode(self, x):
        h = self.enc(x.view(-1, 1, 28, 28))
        return self.fc21(h), self.fc22(h)

    def decode(self, z):
        return self.dec(z)


# ---------------------------------------------------------------- driver
def threads_report():
    """Short form of torch.__config__.parallel_info() plus what OpenBLAS will really use."""
    info = [l.strip() for l in torch.__config__.parallel_info().splitlines()]
    keep = [l for l in info if l.startswith(("at::get_num", "omp_get_max", "ATen parallel"))]
    blas = "BLAS: unknown"
    try:
        ob = ctypes.CDLL("libopenblas.so.0")
        ob.openblas_get_config.restype = ctypes.c_char_p
        blas = "BLAS: %s, openblas_get_num_threads()=%d" % (
            ob.openblas_get_config().decode(), ob.openblas_get_num_threads())
    except (OSError, AttributeError):
        pass
    env = ", ".join("%s=%s" % (k, os.environ.get(k, "unset")) for k in
                    ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"))
    return "torch %s | %s | %s | env: %s" % (torch.__version__, "; ".join(keep), blas, env)


def run_pass(model, data, args, train, opt=None, perm=None, step=0):
    """One pass over data (uint8 [N,784]). Returns (loss, terms) averaged per sample, step."""
    n = data.shape[0]
    tot_loss, tot_terms = 0.0, {}
    for start in range(0, n, args.batch):  # the last partial batch is used
        idx = perm[start:start + args.batch] if perm is not None else slice(start, start + args.batch)
        x = data[idx].to(torch.float32).div_(255.0)
        b = x.shape[0]
        if train:
            scale = min(1.0, step / args.kl_warmup) if args.kl_warmup > 0 else 1.0
            loss, terms = model(x, scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
        else:
            loss, terms = model(x)
        tot_loss += loss.item() * b
        for k, v in terms.items():
            tot_terms[k] = tot_terms.get(k, 0.0) + v.item() * b
    return tot_loss / n, {k: v / n for k, v in tot_terms.items()}, step


def fmt_terms(terms):
    return " ".join("%s %.3f" % (k, v) for k, v in terms.items())


def parse_args():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--model", required=True, choices=["ae", "dae", "sae", "vae", "conv_vae"], help="model to train")
    p.add_argument("--epochs", type=int, default=10, help="training epochs")
    p.add_argument("--batch", type=int, default=128, help="minibatch size (train and test)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (betas 0.9,0.999, eps 1e-8)")
    p.add_argument("--seed", type=int, default=1, help="seed for init, shuffling and noise")
    p.add_argument("--threads", type=int, default=1,
                   help="torch.set_num_threads; OpenBLAS threads follow OPENBLAS_NUM_THREADS instead")
    p.add_argument("--data", default=DEFAULT_DATA, help="directory with the Fashion-MNIST IDX files")
    p.add_argument("--limit", type=int, default=0, help="use only the first N training images (0: all)")
    p.add_argument("--jsonl", help="write one JSON object per epoch to this file")
    p.add_argument("--train-only", action="store_true", help="skip the test pass (speed benchmarks)")
    p.add_argument("--beta", type=float, default=1.0, help="vae: KL weight; sae: KL sparsity weight")
    p.add_argument("--kl-warmup", type=int, default=0,
                   help="vae: steps of linear warm-up of beta from 0 (0: off)")
    p.add_argument("--noise", choices=["mask", "gaussian"], default="mask", help="dae: corruption type")
    p.add_argument("--noise-level", type=float, default=0.25,
                   help="dae: fraction of inputs zeroed (mask) or std dev (gaussian)")
    p.add_argument("--sparsity", choices=["kl", "l1"], default="kl", help="sae: sparsity penalty")
    p.add_argument("--rho", type=float, default=0.05, help="sae kl: target mean activation")
    p.add_argument("--l1-lambda", type=float, default=1e-3, help="sae l1: penalty weight")
    args = p.parse_args()
    if args.epochs < 1 or args.batch < 1 or args.threads < 1 or args.limit < 0:
        p.error("--epochs, --batch and --threads must be >= 1, --limit >= 0")
    return args


def main():
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(threads_report(), flush=True)

    # uint8 in memory; each batch is converted to float32/255
    train = torch.from_numpy(read_idx_images(find_idx(args.data, "train-images-idx3-ubyte"), args.limit))
    test = None
    if not args.train_only:
        test = torch.from_numpy(read_idx_images(find_idx(args.data, "t10k-images-idx3-ubyte")))
    n = train.shape[0]
    print("model %s: train %d images, test %s, batch %d, lr %g, seed %d, threads %d"
          % (args.model, n, "skipped" if test is None else test.shape[0], args.batch, args.lr,
             args.seed, args.threads), flush=True)

    torch.manual_seed(args.seed)  # default PyTorch Linear init, training noise
    model = VAE(args) if args.model == "vae" else ConvVAE(args) if args.model == "conv_vae" else \
        AE(args, sigmoid_code=(args.model == "sae" and args.sparsity == "kl"))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    shuffle_gen = torch.Generator().manual_seed(args.seed)
    out = open(args.jsonl, "w") if args.jsonl else None
    step = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(n, generator=shuffle_gen)
        t0 = time.perf_counter()
        tr_loss, tr_terms, step = run_pass(model, train, args, True, opt, perm, step)
        secs = time.perf_counter() - t0
        te_loss, te_terms = None, None
        if test is not None:
            model.eval()
            if args.model.endswith("vae"):  # same z samples at every epoch's test pass
                model.eps_gen = torch.Generator().manual_seed(args.seed + 1000003)
            with torch.no_grad():
                te_loss, te_terms, _ = run_pass(model, test, args, False)
            if args.model.endswith("vae"):
                model.eps_gen = None
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB -> MiB
        line = "epoch %d  train %.3f (%s)" % (epoch, tr_loss, fmt_terms(tr_terms))
        if te_loss is not None:
            line += "  test %.3f (%s)" % (te_loss, fmt_terms(te_terms))
        print(line + "  %.2fs %.0f samples/s  peak RSS %.1f MiB" % (secs, n / secs, rss), flush=True)
        if out:
            out.write(json.dumps({
                "epoch": epoch, "train_loss": tr_loss, "train_terms": tr_terms,
                "test_loss": te_loss, "test_terms": te_terms, "epoch_seconds": secs,
                "samples_per_second": n / secs, "peak_rss_mib": rss}) + "\n")
            out.flush()
    if out:
        out.close()


if __name__ == "__main__":
    main()
