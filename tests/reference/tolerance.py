"""The tolerance of the cross-rank checks of weights trained with Adam (imported by check_cf.py and
the command-line tests of the prompt stage).

Training at another rank count (or another BLAS kernel, thread count or vector width) computes the
same gradients with their sums in another order. A sum of n float32 terms then changes by at most
gamma_n = n u / (1 - n u) of the sum of its terms' magnitudes (u = 2^-24), and Adam's step
lr * m_hat / (sqrt(v_hat) + eps) changes by about that fraction of lr for a gradient well above eps.
The exception is a gradient near zero whose sign the rounding flips: there the step changes by up
to 2 lr, and no a-priori bound tighter than the step itself exists. So the bound that holds for every
weight is in units of one step, |m_hat / sqrt(v_hat)| <= 1 when beta1^2 <= beta2:

    every weight moves at most lr per step, so the weights of two runs of S steps differ by at most 2 S lr.

That bound cannot catch a defect. What a check must catch is a wrong sharded gradient (a rank's
share lost, doubled, or added at the wrong rows): it changes the step of every weight it touches by a
sizeable fraction of lr, in the first step already. The tolerance is therefore lr / 20: a twentieth of
one step, which any such defect exceeds, while reduction-order rounding (gamma_n lr per step, n up to
a few thousand in the tests: below 1e-4 lr per step) stays below it for the few steps the tests take
unless one gradient sits at zero for the whole run. Each check prints its measured difference as a
fraction of lr, so the margin is visible in the log.
"""
import re


def config_value(f, key):
    """KEY ('group.name') as stored in an output file's 'config' attribute (libconfig text)."""
    text = f.attrs["config"]
    text = text.decode() if isinstance(text, bytes) else str(text)
    group, name = key.split(".", 1)
    m = re.search(r"^%s:\s*\{(.*?)^\};" % re.escape(group), text, re.S | re.M)
    v = m and re.search(r"^\s*%s\s*=\s*([^;]+);" % re.escape(name), m.group(1), re.M)
    if not v:
        raise KeyError("%s: no key %s in its stored config" % (f.filename, key))
    return v.group(1).strip()


def adam_tol(f, lr_key):
    """(tolerance, lr) for weights trained with Adam at the learning rate LR_KEY of F's config."""
    lr = float(config_value(f, lr_key))
    return lr / 20.0, lr
