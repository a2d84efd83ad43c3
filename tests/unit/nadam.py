"""NAdam written as a third-party plugin would write it (not a built-in): its running product of the
momentum schedule is scalar state (`self.scalars`), so state_dict and checkpoints carry it. Used by
test_optimizer_scalars.py (resume) and test_references.py (the reference check, and a sign error)."""
from framework import Optimizer


class NAdam(Optimizer):
    """torch.optim.NAdam (decoupled_weight_decay=False): with mu_t = b1 (1 - 0.5 * 0.96^(t psi)),
    prod_t = mu_1 ... mu_t (scalars["mu_product"]): m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2;
    d = sqrt(v / (1 - b2^t)) + eps;
    p <- p - lr (1 - mu_t) / (1 - prod_t) g / d - lr mu_{t+1} / (1 - prod_t mu_{t+1}) m / d."""

    reference = "torch.optim.NAdam"
    elementwise = True

    def __init__(self, lr: float = 0.002, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 momentum_decay: float = 4e-3):
        super().__init__(lr)
        self.beta1, self.beta2, self.eps, self.momentum_decay = float(beta1), float(beta2), float(eps), float(
            momentum_decay)

    def reference_arguments(self):
        return {"lr": self.lr, "betas": (self.beta1, self.beta2), "eps": self.eps,
                "momentum_decay": self.momentum_decay}

    def mu(self, t):
        return self.beta1 * (1 - 0.5 * 0.96 ** (t * self.momentum_decay))

    def step(self, params, grads):
        groups = self.updates(params, grads)  # t is now this step's
        b1, b2, t = self.beta1, self.beta2, self.t
        mu, mu_next = self.mu(t), self.mu(t + 1)
        product = self.scalars["mu_product"] = self.scalars.get("mu_product", 1.0) * mu
        for _, p, g, slot in groups:
            m, v = slot("m"), slot("v")
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            d = (v / (1 - b2**t)) ** 0.5 + self.eps
            p -= self.lr * (1 - mu) / (1 - product) * (g / d)
            p -= self.lr * mu_next / (1 - product * mu_next) * (m / d)
