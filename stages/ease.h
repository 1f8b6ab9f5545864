/* ease.h: Steck's EASE (WWW 2019) on ScaLAPACK.
 *
 *   G = X^T X + lambda I,   P = G^{-1},   B = I - P diag(1 / diag(P)),  diag(B) = 0
 *   scores of user u:  s_u = x_u B   (x_u the binary history vector)
 *
 * X holds the training interactions. Each rank contributes the item pairs of its users' histories
 * to the owners of the Gram matrix's block-cyclic blocks (one personalised exchange), the owners add
 * them up, and the inverse comes from pdpotrf + pdpotri (Cholesky) on a BLACS grid of all ranks.
 * The symmetric inverse is completed from its lower triangle with pdtran, scaled into B, and
 * written to the stage file as a float32 (n, n) dataset /ease/B collectively. Memory: two
 * distributed n x n double matrices (2 * 8 n^2 bytes over all ranks) while fitting.
 */
#ifndef DM_EASE_H
#define DM_EASE_H

#include "../mpi/h5io.h"
#include "../mpi/par.h"

#include "../src/data/dataset.h"

/* Fits on the interactions of users [ulo, uhi) whose role in `split` is DM_TRAIN (every rank passes
 * its own block; together the blocks cover all users) and writes /ease/B into f. */
int ease_fit_write(par_ctx *ctx, const dm_dataset *d, const int8_t *split, size_t ulo, size_t uhi, double lambda,
                   int block, h5file *f);

#endif
