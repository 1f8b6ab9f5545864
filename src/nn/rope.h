/* rope.h: rotary position embeddings (RoPE; Su et al. 2021, "RoFormer") in the "rotate half"
 * arrangement of Hugging Face Llama, forward and backward over raw row-major pointers.
 *
 * A head vector x (hd, even) at position p is rotated pairwise, pair i joining x_i and x_{i+hd/2}:
 *   x'_i        = x_i cos(p f_i) - x_{i+hd/2} sin(p f_i)
 *   x'_{i+hd/2} = x_{i+hd/2} cos(p f_i) + x_i sin(p f_i),      f_i = theta^(-2i/hd), i < hd/2
 * (HF's q * cos + rotate_half(q) * sin). Meta's original code rotates the interleaved pairs
 * (x_{2i}, x_{2i+1}) instead; the two agree when the rows of the q and k projections are permuted
 * (src/lm/llama_ckpt.h converts). The rotation is orthogonal, so the backward is the rotation by
 * -p f_i applied to the gradient.
 *
 * Tables: cos, sin (max_pos, hd/2) with entry (p, i) = cos / sin of p f_i, computed in double and
 * rounded once. nn_rope_inv_freq gives f_i; a caller that rescales frequencies (Llama 3's long
 * context scaling) edits them before nn_rope_table.
 *
 * nn_rope_forward rotates in place the heads of N rows: row r of x (rows ld floats apart) holds
 * n_heads heads of hd floats back to back and sits at position pos[r]. nn_rope_backward rotates a
 * gradient back the same way (in place). OpenMP over rows; nothing allocates. The naive twins
 * compute each angle afresh in double (no table).
 */
#ifndef DM_NN_ROPE_H
#define DM_NN_ROPE_H

/* inv_freq (hd/2): f_i = theta^(-2i/hd) */
void nn_rope_inv_freq(double *inv_freq, int hd, double theta);
/* cos, sin (max_pos, hd/2) from inv_freq (hd/2) */
void nn_rope_table(float *cos_t, float *sin_t, int max_pos, int hd, const double *inv_freq);

/* x (N rows, ld apart; n_heads * hd used), pos (N); tables from nn_rope_table */
void nn_rope_forward(float *x, int ld, const int *pos, int N, int n_heads, int hd, const float *cos_t,
                     const float *sin_t);
void nn_rope_backward(float *dx, int ld, const int *pos, int N, int n_heads, int hd, const float *cos_t,
                      const float *sin_t);

/* angles p f_i in double from inv_freq (hd/2) */
void nn_rope_forward_naive(float *x, int ld, const int *pos, int N, int n_heads, int hd,
                           const double *inv_freq);
void nn_rope_backward_naive(float *dx, int ld, const int *pos, int N, int n_heads, int hd,
                            const double *inv_freq);

#endif
