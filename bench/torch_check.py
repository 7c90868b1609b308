#!/usr/bin/python3
"""An independent check on bench/torch_ref.py's speed: the MLP VAE of PyTorch's own example
(examples/vae/main.py: 784-400-20, ReLU, Bernoulli decoder, Adam 1e-3, batch 128), written
from that example and not from torch_ref.py, trained for one epoch on Fashion-MNIST's 60k
training images. If torch_ref.py is much slower than this under the same threads, the reference
handicaps PyTorch and compare.sh's ratios flatter graphrun.

    OPENBLAS_NUM_THREADS=2 /usr/bin/python3 bench/torch_check.py --threads 1 [--epochs 1]

Prints one line an epoch: seconds of the training pass and images/s. --model conv_vae trains
models/conv_vae.graph's network instead (the same layers as torch_ref.py's conv_vae).
"""
import argparse
import gzip
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(784, 400)
        self.fc21 = nn.Linear(400, 20)
        self.fc22 = nn.Linear(400, 20)
        self.fc3 = nn.Linear(20, 400)
        self.fc4 = nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.fc4(F.relu(self.fc3(z))), mu, logvar


class ConvVAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(1, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1),
                                 nn.ReLU(), nn.Flatten(), nn.Linear(3136, 256), nn.ReLU())
        self.mu, self.logvar = nn.Linear(256, 20), nn.Linear(256, 20)
        self.dec = nn.Sequential(nn.Linear(20, 3136), nn.ReLU(), nn.Unflatten(1, (64, 7, 7)),
                                 nn.ConvTranspose2d(64, 64, 3, 2, 1, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(64, 32, 3, 2, 1, 1), nn.ReLU(),
                                 nn.ConvTranspose2d(32, 1, 3, 1, 1, 0), nn.Flatten())

    def forward(self, x):
        h = self.enc(x.view(-1, 1, 28, 28))
        mu, logvar = self.mu(h), self.logvar(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.dec(z), mu, logvar


def loss_function(logits, x, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return (bce + kld) / x.shape[0]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--model", choices=["vae", "conv_vae"], default="vae")
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    p.add_argument("--limit", type=int, default=0, help="train on the first N images only (0: all)")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(1)
    with gzip.open(a.data) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 784)
    if a.limit:
        images = images[:a.limit]
    data = torch.from_numpy(images.astype(np.float32) / 255.0)
    model = ConvVAE() if a.model == "conv_vae" else VAE()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        total = 0.0
        for batch in torch.randperm(len(data)).split(128):
            x = data[batch]
            opt.zero_grad()
            logits, mu, logvar = model(x)
            loss = loss_function(logits, x, mu, logvar)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        secs = time.perf_counter() - t0
        print("epoch %d  loss %.3f  %.2f s  %.0f images/s" % (epoch, total / len(data), secs, len(data) / secs),
              flush=True)


if __name__ == "__main__":
    main()
