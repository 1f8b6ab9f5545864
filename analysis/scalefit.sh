#!/usr/bin/env bash
# analysis/scalefit.sh: the alpha-beta scaling model, fitted to measured MPI counts and projected to
# 1024 ranks. Reads what analysis/scaling.sh measured in DIR: counts_p<P>.csv (DM_MPI_COUNT runs of
# one problem at several rank counts: strong scaling) with steps.csv (stage,steps), and optionally
# weak/counts_p<P>.csv with weak/steps.csv (a problem grown with the rank count: weak scaling);
# problem.txt and weak/problem.txt describe the problems in one line. Writes into DIR:
#
#   measured.csv   per problem, rank count, stage and MPI call: calls and bytes per rank (max and
#                  mean over ranks), seconds inside (mean, max)
#   stages.csv     per problem, rank count and stage (max over ranks): wall, compute = wall - time in
#                  MPI, compute CPU = process CPU - CPU in MPI, time in MPI and in MPI-IO
#   measured.md    the same as tables: calls per step and bytes per call of each call, per rank count
#   fit.csv        alpha and beta fitted to the measured time in the collectives; per stage the
#                  compute models and the fitted calls and bytes per rank of every call
#   projection.csv / projection.md   strong and weak scaling to PMAX ranks for the stated network
#   scaling.gp, scaling.dat, scaling{,_weak}.{png,pdf}   the projection (drawn when gnuplot is installed)
#
#   analysis/scalefit.sh DIR        environment: ALPHA (s, default 2e-6), BANDWIDTH (bit/s, default 100e9),
#                                   PMAX (default 1024)
#
# The model. A rank's time in a stage at p ranks is T(p) = C(p) + N(p): compute C, and network N as
# the sum over the rank's collective calls of
#   calls(p) x alpha x A_op(p)  +  bytes(p) x beta x B_op(p)        (beta = 8 / BANDWIDTH s/byte)
# with the standard costs of the algorithms MPI libraries use at large p (lg = ceil(log2 p)):
#   Allreduce, Reduce    Rabenseifner (reduce-scatter + allgather)  A = 2 lg      B = 2 (p-1)/p  (n = vector)
#   Bcast                binomial scatter + ring allgather          A = lg        B = 2 (p-1)/p
#   Barrier              dissemination                              A = lg        B = 0
#   Exscan, Scan         recursive doubling                         A = lg        B = lg
#   Allgather(v), Gather(v), Scatterv   recursive doubling / binomial tree, n = one rank's part
#                                                                   A = lg        B = p - 1
#   Alltoall             pairwise exchange, n = all a rank sends    A = p - 1     B = (p-1)/p
#   Comm_dup, Comm_split context-id agreement (an allreduce)        A = 2 lg      B = 0
# plus its point-to-point messages on a full-duplex link: alpha x max(messages sent, received) +
# beta x max(bytes sent, received) (Send, Rsend, Isend, Sendrecv out; Recv, Irecv, Imrecv in; the
# busiest rank, so the root of a gather built from messages receives everything). Wait*, Testall,
# Mprobe cost nothing of their own. MPI-IO is not modelled (file-system bound, not network): measured
# and listed, left out of T. The reduction arithmetic (gamma) is left out.
#
# From measured to projected:
#   - calls(p) and bytes(p) per rank (the busiest rank) of each stage and call are fitted over the
#     measured p >= 2 with the basis {1, 1/p, p} (least squares; fewer terms with fewer points):
#     the constant part is replicated (a gradient allreduce of the model), the 1/p part is divided
#     among ranks (users' rows gathered), the p part grows with p (one message per peer).
#   - compute CPU seconds of the busiest rank (CPU, not wall: on this 2-core machine more than 2 ranks
#     share cores, so wall minus MPI time holds time slicing; both are in stages.csv): strong
#     C(p) = s + w/p (Amdahl: s is replicated on every rank), weak C(p) = a + c/p + b p (b: work per
#     rank that grows with the total problem; c: work on the fixed catalogue that is divided, such as
#     EASE's distributed item Gram inverse), least squares with non-negative coefficients.
#   - strong scaling projects the strong fits to P; weak scaling the weak fits. Without weak
#     measurements, weak is derived from the strong fits: the 1/p parts stay at their one-rank size
#     (C = s + w, calls and bytes c0 + c1 + c2 P).
#   - alpha and beta fitted to the measured seconds inside the collectives (least squares through
#     the origin over every problem, stage and collective at p >= 2) describe this machine's
#     shared-memory MPI under oversubscription; the projection uses the stated network instead.
set -eu
D=${1:?usage: analysis/scalefit.sh DIR}
ALPHA=${ALPHA:-2e-6}
BANDWIDTH=${BANDWIDTH:-100e9}
PMAX=${PMAX:-1024}
ls "$D"/counts_p*.csv > /dev/null 2>&1 || { echo "error: no counts_p*.csv in $D (run analysis/scaling.sh)" >&2; exit 1; }
[ -f "$D/steps.csv" ] || { echo "error: $D/steps.csv missing (stage,steps)" >&2; exit 1; }
inputs=("$D/steps.csv" "$D"/counts_p*.csv)
if ls "$D"/weak/counts_p*.csv > /dev/null 2>&1; then
  [ -f "$D/weak/steps.csv" ] || { echo "error: $D/weak/steps.csv missing (stage,steps)" >&2; exit 1; }
  inputs+=("$D/weak/steps.csv" "$D"/weak/counts_p*.csv)
fi
desc0=$(cat "$D/problem.txt" 2>/dev/null || echo "the measured problem")
desc1=$(cat "$D/weak/problem.txt" 2>/dev/null || echo "")

awk -F, -v D="$D" -v ALPHA="$ALPHA" -v BW="$BANDWIDTH" -v PMAX="$PMAX" -v DESC0="$desc0" -v DESC1="$desc1" '
function ceil_lg(p,   l, q) { l = 0; q = 1; while (q < p) { q *= 2; l++ } return l }
function sends(op) { return op ~ /^(Send|Rsend|Isend|Sendrecv)$/ }
function recvs(op) { return op ~ /^(Recv|Irecv|Imrecv)$/ }
# collective cost coefficients of one call: A (of alpha) and B (of beta per byte); 0 = not modelled
function costA(op, p,   lg) {
    if (p < 2) return 0
    lg = ceil_lg(p)
    if (op == "Allreduce" || op == "Reduce" || op == "Comm_dup" || op == "Comm_split") return 2 * lg
    if (op == "Bcast" || op == "Barrier" || op == "Exscan" || op == "Scan") return lg
    if (op ~ /^(Allgather|Allgatherv|Gather|Gatherv|Scatterv)$/) return lg
    if (op == "Alltoall") return p - 1
    return 0
}
function costB(op, p) {
    if (p < 2) return 0
    if (op == "Allreduce" || op == "Reduce" || op == "Bcast") return 2 * (p - 1) / p
    if (op == "Exscan" || op == "Scan") return ceil_lg(p)
    if (op ~ /^(Allgather|Allgatherv|Gather|Gatherv|Scatterv)$/) return p - 1
    if (op == "Alltoall") return (p - 1) / p
    return 0
}
function collective(op) { return costA(op, 2) > 0 || costB(op, 2) > 0 }
function modelled(op) { return collective(op) || sends(op) || recvs(op) }
# basis functions: 0 -> 1, 1 -> 1/p, 2 -> p
function fb(f, p) { return f == 0 ? 1 : (f == 1 ? 1 / p : p) }
# least squares y ~ sum c[f] fb(f, p) over the points (xs[i], ys[i]), i < n, with the basis functions
# listed in `terms` ("0 1 2", "0 1", "0 2"), cut to n terms; with nonneg, a negative coefficient
# drops its term and the rest is refitted. Normal equations, Gaussian elimination with pivoting.
function lsq(xs, ys, n, terms, nonneg, c,   T, k, i, j, l, M, v, piv, t, f, x, again) {
    c[0] = 0; c[1] = 0; c[2] = 0
    k = split(terms, T, " ")
    for (j = 1; j <= k; j++) T[j - 1] = T[j] + 0
    if (k > n) k = n
    do {
        again = 0
        if (k == 0) return
        for (j = 0; j < k; j++) { v[j] = 0; x[j] = 0; for (l = 0; l < k; l++) M[j, l] = 0 }
        for (i = 0; i < n; i++)
            for (j = 0; j < k; j++) {
                v[j] += fb(T[j], xs[i]) * ys[i]
                for (l = 0; l < k; l++) M[j, l] += fb(T[j], xs[i]) * fb(T[l], xs[i])
            }
        for (j = 0; j < k; j++) {
            piv = j
            for (i = j + 1; i < k; i++) if ((M[i, j] < 0 ? -M[i, j] : M[i, j]) > (M[piv, j] < 0 ? -M[piv, j] : M[piv, j])) piv = i
            for (l = 0; l < k; l++) { t = M[j, l]; M[j, l] = M[piv, l]; M[piv, l] = t }
            t = v[j]; v[j] = v[piv]; v[piv] = t
            if (M[j, j] == 0) continue
            for (i = j + 1; i < k; i++) {
                f = M[i, j] / M[j, j]
                for (l = j; l < k; l++) M[i, l] -= f * M[j, l]
                v[i] -= f * v[j]
            }
        }
        for (j = k - 1; j >= 0; j--) {
            t = v[j]
            for (l = j + 1; l < k; l++) t -= M[j, l] * x[l]
            x[j] = M[j, j] == 0 ? 0 : t / M[j, j]
        }
        for (j = 0; j < k; j++) c[T[j]] = x[j]
        if (nonneg)
            for (j = 0; j < k && !again; j++)
                if (x[j] < 0) {
                    c[T[j]] = 0
                    for (l = j; l < k - 1; l++) T[l] = T[l + 1]
                    k--; again = 1
                }
    } while (again)
}
function pos(x) { return x > 0 ? x : 0 }
# the rest of a projection table after its "| stage |": ranks, then per stage total (efficiency) or network seconds
function ptable(pm, m, network,   iq, b, st) {
    for (iq = 0; iq < nq; iq++) printf " %d |", Q[iq] > pm
    printf "\n|---|" > pm
    for (iq = 0; iq < nq; iq++) printf "---:|" > pm
    printf "\n" > pm
    for (b = 0; b <= ns; b++) {
        st = b < ns ? sts[b] : "all"
        printf "| %s |", st > pm
        for (iq = 0; iq < nq; iq++)
            if (network) printf " %.3g |", PN[m, st, Q[iq]] > pm
            else printf " %.3g (%.2f) |", PT[m, st, Q[iq]], PE[m, st, Q[iq]] > pm
        printf "\n" > pm
    }
}
function human(b) {
    if (b >= 1048576) return sprintf("%.1fM", b / 1048576)
    if (b >= 1024) return sprintf("%.1fk", b / 1024)
    return sprintf("%.0f", b)
}
FNR == 1 { ds = FILENAME ~ /\/weak\/[^\/]*$/ ? 1 : 0; HAVE[ds] = 1; mode = FILENAME ~ /steps\.csv$/ ? "steps" : "counts"; next }
mode == "steps" { steps[ds, $1] = $2; next }
{
    p = $1 + 0; r = $2; st = $3; op = $4; kind = $5
    if (!((ds, p) in P)) { P[ds, p] = 1; ps[ds, np[ds]++] = p }
    if (st != "other" && !(st in S)) { S[st] = 1; sts[ns++] = st }
    if (kind == "stage") { wall[ds, p, st, r] = $9; cpu[ds, p, st, r] = $10; seen[ds, p, st] = 1; next }
    key = ds SUBSEP p SUBSEP st SUBSEP op
    if (!(key in K)) { K[key] = 1; opkind[op] = kind; OPS[st, op] = 1 }
    ncalls[key] += $6; nbytes[key] += $7; nsec[key] += $9
    if ($6 > mcalls[key]) mcalls[key] = $6
    if ($7 > mbytes[key]) mbytes[key] = $7
    if ($9 > msec[key]) msec[key] = $9
    mpiw[ds, p, st, r] += $9; mpic[ds, p, st, r] += $10
    if (kind == "io") iow[ds, p, st, r] += $9
}
END {
    for (d = 0; d < 2; d++)
        for (i = 1; i < np[d]; i++) for (j = i; j > 0 && ps[d, j - 1] > ps[d, j]; j--) { t = ps[d, j]; ps[d, j] = ps[d, j - 1]; ps[d, j - 1] = t }
    # pipeline order where known, then by name
    split("synth ingest train-cf align lm prompt explain stream eval", order, " ")
    for (i = 0; i < ns; i++) { rank_[sts[i]] = 99; for (j in order) if (order[j] == sts[i]) rank_[sts[i]] = j + 0 }
    for (i = 1; i < ns; i++) for (j = i; j > 0 && (rank_[sts[j - 1]] > rank_[sts[j]] || (rank_[sts[j - 1]] == rank_[sts[j]] && sts[j - 1] > sts[j])); j--) { t = sts[j]; sts[j] = sts[j - 1]; sts[j - 1] = t }
    beta = 8 / BW
    PNAME[0] = "strong"; PNAME[1] = "weak"

    # ---- measured.csv, stages.csv
    f = D "/measured.csv"
    print "problem,ranks,stage,op,kind,calls_max,calls_mean,bytes_max,bytes_mean,seconds_mean,seconds_max" > f
    g = D "/stages.csv"
    print "problem,ranks,stage,steps,wall_s,compute_wall_s,compute_cpu_s,mpi_s,io_s" > g
    for (d = 0; d < 2; d++) for (a = 0; a < np[d]; a++) {
        p = ps[d, a]
        for (b = -1; b < ns; b++) {
            st = b < 0 ? "other" : sts[b]
            if (!((d, p, st) in seen)) continue
            w = 0; cw = 0; cc = 0; mw = 0; iw = 0
            for (r = 0; r < p; r++) {
                if (wall[d, p, st, r] > w) w = wall[d, p, st, r]
                x = wall[d, p, st, r] - mpiw[d, p, st, r]; if (x > cw) cw = x
                x = cpu[d, p, st, r] - mpic[d, p, st, r]; if (x > cc) cc = x
                if (mpiw[d, p, st, r] > mw) mw = mpiw[d, p, st, r]
                if (iow[d, p, st, r] > iw) iw = iow[d, p, st, r]
            }
            W[d, p, st] = w; CW[d, p, st] = cw; CC[d, p, st] = cc; MW[d, p, st] = mw; IW[d, p, st] = iw
            printf "%s,%d,%s,%s,%.6f,%.6f,%.6f,%.6f,%.6f\n", PNAME[d], p, st, ((d, st) in steps) ? steps[d, st] : 1, w, cw, cc, mw, iw > g
            for (so in OPS) {
                split(so, kk, SUBSEP); if (kk[1] != st) continue
                key = d SUBSEP p SUBSEP st SUBSEP kk[2]; if (!(key in K)) continue
                printf "%s,%d,%s,%s,%s,%.0f,%.3f,%.0f,%.1f,%.6f,%.6f\n", PNAME[d], p, st, kk[2], opkind[kk[2]], mcalls[key], ncalls[key] / p,
                       mbytes[key], nbytes[key] / p, nsec[key] / p, msec[key] > f
            }
        }
    }
    close(f); close(g)

    # ---- alpha-beta fitted to the measured collectives (through the origin, two unknowns)
    s11 = 0; s12 = 0; s22 = 0; sx1y = 0; sx2y = 0; syy = 0; npt = 0
    for (key in K) {
        split(key, kk, SUBSEP); p = kk[2] + 0; op = kk[4]
        if (p < 2 || !collective(op)) continue
        x1 = ncalls[key] / p * costA(op, p); x2 = nbytes[key] / p * costB(op, p); y = nsec[key] / p
        s11 += x1 * x1; s12 += x1 * x2; s22 += x2 * x2; sx1y += x1 * y; sx2y += x2 * y; syy += y * y; npt++
    }
    det = s11 * s22 - s12 * s12
    fa = det != 0 ? (sx1y * s22 - sx2y * s12) / det : 0
    fbeta = det != 0 ? (sx2y * s11 - sx1y * s12) / det : 0
    if (fbeta < 0) { fbeta = 0; fa = s11 ? sx1y / s11 : 0 }
    if (fa < 0) { fa = 0; fbeta = s22 ? sx2y / s22 : 0 }
    sse = syy - 2 * (fa * sx1y + fbeta * sx2y) + fa * fa * s11 + 2 * fa * fbeta * s12 + fbeta * fbeta * s22
    r2 = syy > 0 ? 1 - sse / syy : 0
    h = D "/fit.csv"
    print "what,problem,stage,op,c0,c1_over_p,c2_times_p,note" > h
    printf "alpha_fit,,,,%.6e,,,s per latency term; least squares over %d (problem x stage x collective x ranks) cells\n", fa, npt > h
    printf "beta_fit,,,,%.6e,,,s per byte term (%.3g GB/s)\n", fbeta, (fbeta > 0 ? 1e-9 / fbeta : 0) > h
    printf "r2_fit,,,,%.4f,,,uncentred R^2 of the alpha-beta fit\n", r2 > h
    printf "alpha_proj,,,,%.6e,,,s (stated network)\n", ALPHA > h
    printf "beta_proj,,,,%.6e,,,s per byte (%.4g Gb/s)\n", beta, BW / 1e9 > h

    # ---- per problem: compute model, and calls and bytes per rank of each (stage, call) against p
    for (d = 0; d < 2; d++) {
        if (!HAVE[d]) continue
        for (b = 0; b < ns; b++) {
            st = sts[b]; n = 0
            for (a = 0; a < np[d]; a++) if ((d, ps[d, a], st) in seen) { xs[n] = ps[d, a]; ys[n] = CC[d, ps[d, a], st]; n++ }
            lsq(xs, ys, n, d ? "0 1 2" : "0 1", 1, c)
            res = 0; for (i = 0; i < n; i++) { e = ys[i] - c[0] - c[1] / xs[i] - c[2] * xs[i]; res += e * e }
            C0[d, st] = c[0]; C1[d, st] = c[1]; C2[d, st] = c[2]
            printf "compute,%s,%s,,%.6f,%.6f,%.6f,CPU s of the busiest rank; rms residual %.4f s over %d rank counts\n", PNAME[d], st, c[0], c[1], c[2], n ? sqrt(res / n) : 0, n > h
            for (so in OPS) {
                split(so, kk, SUBSEP); if (kk[1] != st || !modelled(kk[2])) continue
                op = kk[2]; n = 0
                for (a = 0; a < np[d]; a++) if (ps[d, a] >= 2) { xs[n] = ps[d, a]; k2 = d SUBSEP ps[d, a] SUBSEP st SUBSEP op; ys[n] = (k2 in K) ? mcalls[k2] : 0; zs[n] = (k2 in K) ? mbytes[k2] : 0; n++ }
                lsq(xs, ys, n, "0 1 2", 0, c); N0[d, st, op] = c[0]; N1[d, st, op] = c[1]; N2[d, st, op] = c[2]
                printf "calls,%s,%s,%s,%.6g,%.6g,%.6g,per rank (busiest)\n", PNAME[d], st, op, c[0], c[1], c[2] > h
                lsq(xs, zs, n, "0 1 2", 0, c); B0[d, st, op] = c[0]; B1[d, st, op] = c[1]; B2[d, st, op] = c[2]
                printf "bytes,%s,%s,%s,%.6g,%.6g,%.6g,per rank (busiest)\n", PNAME[d], st, op, c[0], c[1], c[2] > h
                MOD[d, st, op] = 1
            }
        }
    }
    close(h)

    # ---- projection
    pr = D "/projection.csv"
    print "scaling,stage,ranks,compute_s,comm_s,total_s,speedup,efficiency" > pr
    nq = 0; for (q = 1; q <= PMAX; q *= 2) Q[nq++] = q
    for (m = 0; m < 2; m++) {
        d = m && HAVE[1] ? 1 : 0      # the fits the projection uses
        derive = m && !HAVE[1]       # weak from the strong fits
        for (b = 0; b <= ns; b++) {
            st = b < ns ? sts[b] : "all"
            for (iq = 0; iq < nq; iq++) {
                q = Q[iq]; tc = 0; tn = 0
                for (bb = 0; bb < ns; bb++) {
                    s2 = sts[bb]; if (st != "all" && s2 != st) continue
                    iq_ = derive ? 1 : 1 / q
                    tc += pos(C0[d, s2] + C1[d, s2] * iq_ + C2[d, s2] * q)
                    mo = 0; mi = 0; bo = 0; bi = 0
                    for (so in MOD) {
                        split(so, kk, SUBSEP); if (kk[1] != d || kk[2] != s2) continue
                        op = kk[3]
                        nc = pos(N0[so] + N1[so] * iq_ + N2[so] * q); nb = pos(B0[so] + B1[so] * iq_ + B2[so] * q)
                        if (q < 2) continue
                        if (sends(op)) { mo += nc; bo += nb } else if (recvs(op)) { mi += nc; bi += nb }
                        else tn += nc * ALPHA * costA(op, q) + nb * beta * costB(op, q)
                    }
                    tn += ALPHA * (mo > mi ? mo : mi) + beta * (bo > bi ? bo : bi)
                }
                if (q == 1) T1[m, st] = tc + tn
                tt = tc + tn; sp = tt > 0 ? T1[m, st] / tt : 0
                if (m) { eff = sp; sp = sp * q } else eff = sp / q
                printf "%s,%s,%d,%.6f,%.6f,%.6f,%.3f,%.4f\n", PNAME[m], st, q, tc, tn, tt, sp, eff > pr
                PT[m, st, q] = tt; PN[m, st, q] = tn; PE[m, st, q] = eff
            }
        }
    }
    close(pr)

    # ---- measured.md
    md = D "/measured.md"
    printf "Measured, counted through the MPI profiling interface (DM_MPI_COUNT); the busiest rank of each.\n" > md
    for (d = 0; d < 2; d++) {
        if (!HAVE[d]) continue
        printf "\n%s: %s.\n\n", d ? "Weak scaling" : "Strong scaling", d ? DESC1 : DESC0 > md
        printf "| stage | ranks | steps | wall s | compute s (wall - MPI) | compute CPU s | MPI s | of which MPI-IO s |\n|---|---:|---:|---:|---:|---:|---:|---:|\n" > md
        for (b = 0; b < ns; b++) for (a = 0; a < np[d]; a++) {
            st = sts[b]; p = ps[d, a]; if (!((d, p, st) in seen)) continue
            printf "| %s | %d | %s | %.2f | %.2f | %.2f | %.2f | %.2f |\n", st, p, ((d, st) in steps) ? steps[d, st] : 1, W[d, p, st], CW[d, p, st], CC[d, p, st], MW[d, p, st], IW[d, p, st] > md
        }
        printf "\nCalls per step x bytes per call, the busiest rank (its calls / steps, its bytes / its calls), of every call with a network cost.\n\n| stage | call |" > md
        for (a = 0; a < np[d]; a++) printf " %d |", ps[d, a] > md
        printf "\n|---|---|" > md
        for (a = 0; a < np[d]; a++) printf "---:|" > md
        printf "\n" > md
        for (b = 0; b < ns; b++) {
            st = sts[b]; stp = ((d, st) in steps) && steps[d, st] > 0 ? steps[d, st] : 1
            nl = 0; for (so in OPS) { split(so, kk, SUBSEP); if (kk[1] == st && modelled(kk[2])) L[nl++] = kk[2] }
            for (i = 1; i < nl; i++) for (j = i; j > 0 && L[j - 1] > L[j]; j--) { t = L[j]; L[j] = L[j - 1]; L[j - 1] = t }
            for (i = 0; i < nl; i++) {
                row = sprintf("| %s | %s |", st, L[i]); any = 0
                for (a = 0; a < np[d]; a++) {
                    k2 = d SUBSEP ps[d, a] SUBSEP st SUBSEP L[i]
                    if (!(k2 in K) || mcalls[k2] == 0) { row = row " - |"; continue }
                    row = row sprintf(" %.4g x %s |", mcalls[k2] / stp, human(mbytes[k2] / mcalls[k2])); any = 1
                }
                if (any) print row > md
            }
        }
    }
    close(md)

    # ---- projection.md
    pm = D "/projection.md"
    printf "PROJECTION from the measured counts, not a measurement: alpha = %g us, %g Gb/s (beta = %.3g ns/byte); collective costs of the standard algorithms (analysis/scalefit.sh); compute fitted to the measured compute CPU time; MPI-IO not included.\n\n", ALPHA * 1e6, BW / 1e9, beta * 1e9 > pm
    for (m = 0; m < 2; m++) {
        printf "%s scaling (%s): projected seconds per run (parallel efficiency)\n\n| stage |", m ? "Weak" : "Strong", m ? (HAVE[1] ? DESC1 : "derived from the strong fits: the divided parts kept at their one-rank size") : DESC0 > pm
        ptable(pm, m, 0)
        printf "\nof which network seconds:\n\n| stage |" > pm
        ptable(pm, m, 1)
        printf "\n" > pm
    }
    printf "Fitted to this machine (shared-memory MPI, 2 cores, oversubscribed beyond 2 ranks, other jobs running): alpha %.3g us, beta %.3g ns/byte (uncentred R^2 %.3f); not used for the projection.\n", fa * 1e6, fbeta * 1e9, r2 > pm
    close(pm)
    # data for the figure: one block per stage (ranks, strong total s, strong efficiency, weak total s, weak efficiency)
    dat = D "/scaling.dat"
    printf "" > dat
    for (b = 0; b <= ns; b++) {
        st = b < ns ? sts[b] : "all"
        printf "# %s\n", st > dat
        for (iq = 0; iq < nq; iq++) printf "%d\t%.6g\t%.4f\t%.6g\t%.4f\n", Q[iq], PT[0, st, Q[iq]], PE[0, st, Q[iq]], PT[1, st, Q[iq]], PE[1, st, Q[iq]] > dat
        printf "\n\n" > dat
        NAMES = NAMES (b ? " " : "") st
    }
    close(dat)
    print NAMES > D "/scaling.stages"
}' "${inputs[@]}"

# ---- the figures: gnuplot, in the report's style (analysis/rpt_gp.c: Okabe-Ito colours, cairo
# terminals, PNG at 300 dpi and PDF, 3.4 in wide, sans 8 pt); scaling.png/pdf strong scaling,
# scaling_weak.png/pdf weak scaling; a dotted line marks the largest measured rank count
stages=$(cat "$D/scaling.stages")
rm -f "$D/scaling.stages"
pmeas=$(ls "$D"/counts_p*.csv | sed 's/.*counts_p\([0-9]*\)\.csv/\1/' | sort -n | tail -n 1)
net=$(awk -v a="$ALPHA" -v b="$BANDWIDTH" 'BEGIN { printf "alpha %g us, %g Gb/s", a * 1e6, b / 1e9 }')
{
  echo "# scaling.gp: written by analysis/scalefit.sh. A PROJECTION from measured MPI counts (alpha-beta model),"
  echo "# not a measurement. Data: scaling.dat (one block per stage: ranks, strong total s, strong efficiency,"
  echo "# weak total s, weak efficiency). Rerun: gnuplot scaling.gp in this directory."
  echo 'set datafile separator "\t"'
  echo 'set encoding utf8'
  echo 'set border 3 lw 1'
  echo 'set tics nomirror out scale 0.6'
  echo 'set grid ytics lc rgb "#dddddd" lw 0.6 dt 1'
  echo 'set key outside right center vertical Left reverse samplen 1.2 spacing 1.1 width -1 noenhanced'
  i=1
  for c in "#0072B2" "#D55E00" "#009E73" "#CC79A7" "#E69F00" "#56B4E9" "#000000" "#882255"; do
    echo "set linetype $i lc rgb \"$c\" lw 1.6 pt $((i * 2 + 3)) ps 0.5"; i=$((i + 1))
  done
  echo 'set logscale x 2'
  echo "set xrange [1:$PMAX]"
  echo 'set xlabel "MPI ranks" noenhanced'
  echo 'set ylabel "parallel efficiency" noenhanced'
  echo 'set yrange [0:*]'
  echo "set arrow 1 from $pmeas, graph 0 to $pmeas, graph 1 nohead lc rgb \"#999999\" dt 3"
  echo "set label 1 \"measured | projected\" at $pmeas, graph 0.97 center offset 0, 0.6 tc rgb \"#666666\" noenhanced"
  for m in strong weak; do
    col=3; name=scaling; [ $m = weak ] && { col=5; name=scaling_weak; }
    echo "set title \"${m^} scaling: projection from measured counts ($net)\" noenhanced"
    plot="plot"
    k=0
    for s in $stages; do
      sep=""; if [ $k -gt 0 ]; then sep=","; fi
      plot="$plot$sep \"scaling.dat\" index $k using 1:$col with linespoints lt $((k + 1)) title \"$s\""
      k=$((k + 1))
    done
    echo 'set terminal pngcairo size 1020,694 noenhanced font "sans,15.2" linewidth 2.4'
    echo "set output \"$name.png\""
    echo "$plot"
    echo 'set terminal pdfcairo size 3.4in,2.31in noenhanced font "sans,8" linewidth 0.8'
    echo "set output \"$name.pdf\""
    echo 'replot'
  done
} > "$D/scaling.gp"
if command -v gnuplot > /dev/null; then (cd "$D" && gnuplot scaling.gp) || { echo "error: gnuplot failed on $D/scaling.gp" >&2; exit 1; }
else echo "note: gnuplot not installed; $D/scaling.gp written, not drawn" >&2; fi
echo "scalefit: $D/{measured.md,stages.csv,fit.csv,projection.csv,projection.md,scaling.png,scaling_weak.png}"
