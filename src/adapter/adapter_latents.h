/* adapter_latents.h: the frozen base latents as the online adapter takes them (DESIGN.md idea 1):
 * their RMS norm, the balancing of the user and item sides, and each user's recent taste.
 *
 *   RMS norm      rms(X) = sqrt( (1/n) sum_r |x_r|^2 )   over the n rows x_r of X (n, d); 0 for n = 0
 *   balancing     scores h_u . z_i of a dot-product model do not change under h -> c h, z -> z / c.
 *                 c = sqrt(rms(Z) / rms(H)) (1 when either norm is 0) gives both sides the same
 *                 RMS norm sqrt(rms(Z) rms(H)); otherwise the side with the small norm would need
 *                 far larger residuals and one adapter.sigma (in units of that norm) could not fit
 *                 both. The stream stage picks c at window 0 and keeps it.
 *   recent taste  taste_u(w) = sum_j a_j z_{i_j} / sum_j a_j,   a_j = exp(-(t_w - t_j) / tau)
 *                 over user u's interactions j before window w (window[j] < w) with t_w =
 *                 window_start[w]; terms with a_j < 1e-6 are dropped, and taste_u = 0 when none is
 *                 left. tau (adapter_latents_tau) = tau_ms when > 0, else the length of window w - 1
 *                 (of window 0 when w = 0), and 1 ms when that is not positive. z is the balanced
 *                 z_base, so the taste lives in the item latents' space.
 *
 * Precision: the RMS sums are in double; the taste's weights are double and its weighted sums are
 * accumulated in float in the user's time order (the stream stage's adapted state depends on these
 * exact roundings; tests/unit/test_adapter.c bounds them against a double-precision naive twin).
 * Pure functions of their arguments: every rank gets bitwise the same result. Nothing allocates;
 * the caller owns every buffer.
 */
#ifndef DM_ADAPTER_LATENTS_H
#define DM_ADAPTER_LATENTS_H

#include "../data/dataset.h"

#include <stddef.h>
#include <stdint.h>

/* rms(x) of x (n, d). */
double adapter_latents_rms(const float *x, size_t n, size_t d);
/* c = sqrt(rms_z / rms_h), 1 when either is not positive. */
double adapter_latents_balance(double rms_z, double rms_h);
/* out[k] = (float)(x[k] * c), k < n: the user side h c. out may be x. */
void adapter_latents_scale(const float *x, size_t n, double c, float *out);
/* out[k] = (float)(x[k] / c), k < n: the item side z / c (a division, not a product with 1 / c:
 * the rounding is part of the stage's numbers). out may be x. */
void adapter_latents_unscale(const float *x, size_t n, double c, float *out);

/* tau in ms for window w of d (0 <= w < n_windows): tau_ms when > 0,
 * else the length of window w - 1 (window 0 for w = 0); 1 when not positive. */
double adapter_latents_tau(const dm_dataset *d, int64_t w, double tau_ms);
/* taste_u(w) of every user u < d->n_users into out + u ld, d_z columns each (the other columns of
 * the row are left alone): z (n_items, d_z) row-major, ld >= d_z. Needs d's interactions of each
 * user in time order (the dataset's order), so that window[j] < w holds for a prefix. */
void adapter_latents_taste(const dm_dataset *d, int64_t w, double tau, const float *z, size_t d_z,
                           float *out, size_t ld);

#endif
