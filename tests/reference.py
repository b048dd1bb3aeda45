"""The paper's equations in plain torch: the reference the pipeline's torchrl objects are held against.

Schulman et al. 2017, "Proximal Policy Optimization Algorithms" (arXiv 1707.06347). Everything here is
written from the equations, per sample, with no torchrl or torch.distributions (the tests evaluate it in float64,
except for the gradient check of Eq. 2, which needs the float32 autograd graph): the property
tests feed the same inputs to the pipeline (``ppo_pipeline.algo.objectives``) and to these functions.

Notation: ``logp`` = log pi_theta(a_t|s_t), ``logp_old`` = the stored log pi_theta_old(a_t|s_t), ``adv`` = A_t.
Every function returns per-sample values; the expectation E_t[...] is the caller's ``.mean()``.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


def f64(x: Tensor) -> Tensor:
    """Detached float64 copy (the reference never runs in float32, and never carries gradients)."""
    return x.detach().to(torch.float64)


# ----------------------------------------------------------------------------------------------------
# Log-densities, entropies, KLs of the two policy families (the quantities inside Eqs. 6-9)
# ----------------------------------------------------------------------------------------------------
def gaussian_log_prob(action: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """log N(a; mu, diag(sigma^2)) summed over action dims: -sum[(a-mu)^2/(2 sigma^2) + log sigma + log(2 pi)/2]."""
    z = (action - loc) / scale
    return (-0.5 * z * z - torch.log(scale) - 0.5 * math.log(2 * math.pi)).sum(-1)


def categorical_log_prob(action: Tensor, logits: Tensor) -> Tensor:
    """log softmax(logits)[a] = logits[a] - log sum_k exp(logits[k])."""
    log_p = logits - torch.logsumexp(logits, -1, keepdim=True)
    return log_p.gather(-1, action.long().unsqueeze(-1)).squeeze(-1)


def gaussian_entropy(scale: Tensor) -> Tensor:
    """S[N(mu, diag sigma^2)] = sum_i (1/2 + log(2 pi)/2 + log sigma_i)  (the S of Eq. 9)."""
    return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(scale)).sum(-1)


def categorical_entropy(logits: Tensor) -> Tensor:
    """S[pi] = -sum_k p_k log p_k  (the S of Eq. 9)."""
    log_p = logits - torch.logsumexp(logits, -1, keepdim=True)
    return -(log_p.exp() * log_p).sum(-1)


def gaussian_kl(loc_old: Tensor, scale_old: Tensor, loc: Tensor, scale: Tensor) -> Tensor:
    """KL[pi_old, pi] of diagonal Gaussians (the KL of Eq. 8), summed over action dims.

    sum_i log(sigma_i / sigma_old_i) + (sigma_old_i^2 + (mu_old_i - mu_i)^2) / (2 sigma_i^2) - 1/2.
    """
    return (torch.log(scale / scale_old) + (scale_old ** 2 + (loc_old - loc) ** 2) / (2 * scale ** 2) - 0.5).sum(-1)


def categorical_kl(logits_old: Tensor, logits: Tensor) -> Tensor:
    """KL[pi_old, pi] = sum_k p_old_k (log p_old_k - log p_k)  (the KL of Eq. 8)."""
    lp_old = logits_old - torch.logsumexp(logits_old, -1, keepdim=True)
    lp = logits - torch.logsumexp(logits, -1, keepdim=True)
    return (lp_old.exp() * (lp_old - lp)).sum(-1)


# ----------------------------------------------------------------------------------------------------
# Surrogate objectives (Eqs. 2, 6, 7, 8) and the combined objective (Eq. 9); per sample, to maximise
# ----------------------------------------------------------------------------------------------------
def ratio(logp: Tensor, logp_old: Tensor) -> Tensor:
    """r_t(theta) = pi_theta(a_t|s_t) / pi_theta_old(a_t|s_t) = exp(logp - logp_old)   (Sec. 3)."""
    return torch.exp(logp - logp_old)


def l_pg(logp: Tensor, adv: Tensor) -> Tensor:
    """L^PG = log pi_theta(a_t|s_t) A_t   (Eq. 2): the policy-gradient loss whose gradient is g-hat (Eq. 1)."""
    return logp * adv


def l_cpi(r: Tensor, adv: Tensor) -> Tensor:
    """L^CPI = r_t(theta) A_t   (Eq. 6)."""
    return r * adv


def l_clip(r: Tensor, adv: Tensor, eps: float) -> Tensor:
    """L^CLIP = min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)   (Eq. 7)."""
    return torch.minimum(r * adv, torch.clamp(r, 1.0 - eps, 1.0 + eps) * adv)


def l_klpen(r: Tensor, adv: Tensor, kl: Tensor, beta: float) -> Tensor:
    """L^KLPEN = r_t A_t - beta KL[pi_old(.|s_t), pi_theta(.|s_t)]   (Eq. 8)."""
    return r * adv - beta * kl


def l_vf(value: Tensor, value_target: Tensor) -> Tensor:
    """L^VF = (V_theta(s_t) - V_t^targ)^2   (Eq. 9, squared-error loss)."""
    return (value - value_target) ** 2


def l_vf_clipped(value: Tensor, value_old: Tensor, value_target: Tensor, clip: float) -> Tensor:
    """Clipped value loss of OpenAI baselines' ``ppo2`` (not in the paper; the source torchrl follows):

    V_clip = V_old + clip(V - V_old, -c, c);  L = max((V - V_targ)^2, (V_clip - V_targ)^2).
    """
    v_clip = value_old + torch.clamp(value - value_old, -clip, clip)
    return torch.maximum((value - value_target) ** 2, (v_clip - value_target) ** 2)


def eq9_loss(surrogate: Tensor, vf: Tensor, entropy: Tensor, c1: float, c2: float) -> Tensor:
    """-L^{CLIP+VF+S} = -E_t[L^surr_t - c1 L^VF_t + c2 S[pi](s_t)]   (Eq. 9), as a loss to minimise."""
    return -(surrogate - c1 * vf + c2 * entropy).mean()


def normalize_advantage(adv: Tensor, eps: float = 1e-6) -> Tensor:
    """Per-minibatch standardisation (A - mean) / std (not in the paper; "37 details" #7).

    std is the unbiased sample std (torch's default, as in the reference implementations), floored at
    ``eps``; a single sample is left as is.
    """
    if adv.numel() <= 1:
        return adv
    return (adv - adv.mean()) / adv.std().clamp_min(eps)


def adapt_beta(beta: float, d: float, d_targ: float) -> float:
    """The adaptive KL coefficient (Sec. 4): d < d_targ/1.5 -> beta/2; d > d_targ*1.5 -> beta*2; else beta."""
    if d < d_targ / 1.5:
        return beta / 2
    if d > d_targ * 1.5:
        return beta * 2
    return beta


# ----------------------------------------------------------------------------------------------------
# Advantage estimation (Eqs. 10-12) over [envs, T] tensors, time last, with episode boundaries
# ----------------------------------------------------------------------------------------------------
def td_residual(reward: Tensor, value: Tensor, next_value: Tensor, terminated: Tensor, gamma: float) -> Tensor:
    """delta_t = r_t + gamma V(s_{t+1}) - V(s_t)   (Eq. 12); V(s_{t+1}) = 0 past a termination."""
    return reward + gamma * (~terminated).to(reward.dtype) * next_value - value


def gae_recursion(reward: Tensor, value: Tensor, next_value: Tensor, done: Tensor, terminated: Tensor,
                  gamma: float, lmbda: float) -> Tensor:
    """A_t = delta_t + (gamma lambda) A_{t+1}, A_T = 0, the recursion of Eq. 11; an episode end cuts it."""
    delta = td_residual(reward, value, next_value, terminated, gamma)
    adv = torch.zeros_like(delta)
    nxt = torch.zeros_like(delta[..., 0])
    for t in reversed(range(delta.shape[-1])):
        nxt = delta[..., t] + gamma * lmbda * (~done[..., t]).to(delta.dtype) * nxt
        adv[..., t] = nxt
    return adv


def gae_closed_form(reward: Tensor, value: Tensor, next_value: Tensor, done: Tensor, terminated: Tensor,
                    gamma: float, lmbda: float) -> Tensor:
    """A_t = sum_{l >= 0} (gamma lambda)^l delta_{t+l} up to the episode's end (Eq. 11 written as the sum)."""
    delta = td_residual(reward, value, next_value, terminated, gamma)
    w = _discount_matrix(done, gamma * lmbda)                    # [envs, T, T]
    return (w * delta.unsqueeze(-2)).sum(-1)


def discounted_return_minus_value(reward: Tensor, value: Tensor, next_value: Tensor, done: Tensor,
                                  terminated: Tensor, gamma: float) -> Tensor:
    """A_t = -V(s_t) + r_t + gamma r_{t+1} + ... + gamma^{e-t} r_e + gamma^{e-t+1} V(s_{e+1})   (Eq. 10).

    e is the last step of t's episode inside the batch (the first done at or after t, else T-1); the
    bootstrap V(s_{e+1}) is dropped when the episode terminated at e (a truncation keeps it).
    """
    w = _discount_matrix(done, gamma)                             # w[t, s] = gamma^{s-t} for s in [t, e(t)]
    ret = (w * reward.unsqueeze(-2)).sum(-1)
    T = reward.shape[-1]
    idx = torch.arange(T)
    is_end = done.clone()
    is_end[..., -1] = True
    # e(t): the first end index >= t
    end_idx = torch.where(is_end, idx, torch.full_like(idx, T)).flip(-1).cummin(-1).values.flip(-1)
    boot = torch.gather(((~terminated).to(value.dtype) * next_value), -1, end_idx)
    expo = (end_idx - idx + 1).to(value.dtype)
    return ret + torch.pow(torch.as_tensor(gamma, dtype=value.dtype), expo) * boot - value


def _discount_matrix(done: Tensor, rate: float) -> Tensor:
    """w[..., t, s] = rate^(s-t) when t <= s and no episode ends in [t, s); 0 otherwise (0^0 = 1)."""
    T = done.shape[-1]
    t = torch.arange(T)
    lag = (t.view(1, T) - t.view(T, 1)).to(torch.float64)                    # s - t
    # ends strictly before s counted from t: prefix sums of done over [t, s)
    c = torch.cumsum(done.to(torch.float64), -1)
    c_excl = c - done.to(torch.float64)                                      # sum over [0, s)
    ends_between = c_excl.unsqueeze(-2) - c_excl.unsqueeze(-1)               # sum over [t, s)
    ok = (lag >= 0) & (ends_between == 0)
    rate_t = torch.as_tensor(rate, dtype=torch.float64)
    return torch.where(ok, torch.pow(rate_t, lag.clamp_min(0)), torch.zeros((), dtype=torch.float64))
