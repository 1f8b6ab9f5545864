#!/usr/bin/env bash
# analysis/scalefit.sh: the alpha-beta scaling model, fitted to measured MPI counts and projected to
# 1024 ranks. Reads what analysis/scaling.sh measured in DIR (counts_p<P>.csv from DM_MPI_COUNT runs
# at several rank counts, steps.csv) and writes there:
#
#   measured.csv   per rank count, stage and MPI call: calls and bytes per rank (max and mean over
#                  ranks), seconds inside (mean, max)
#   stages.csv     per rank count and stage (max over ranks): wall, compute = wall - time in MPI,
#                  compute CPU = process CPU - CPU in MPI, time in MPI and in MPI-IO
#   measured.md    the same as tables: calls per step and bytes per call of each call, per rank count
#   fit.csv        alpha and beta fitted to the measured time in the collectives; per stage the
#                  compute model t(p) = s + w/p and its residual
#   projection.csv / projection.md   strong and weak scaling to 1024 ranks for the stated network
#   scaling.gp, scaling.png, scaling.pdf  the projection (gnuplot; run when gnuplot is installed)
#
#   analysis/scalefit.sh DIR        environment: ALPHA (s, default 2e-6), BANDWIDTH (bit/s, default 100e9),
#                                   PMAX (default 1024)
#
# The model. A rank's time in a stage at p ranks is T(p) = C(p) + sum over its MPI calls of
#   calls(p) x alpha x A_op(p)  +  bytes(p) x beta x B_op(p)        (beta = 8 / BANDWIDTH s/byte)
# with the standard costs of the algorithms MPI libraries use for large p (lg = ceil(log2 p)):
#   Allreduce, Reduce    Rabenseifner (reduce-scatter + allgather)  A = 2 lg      B = 2 (p-1)/p  (n = vector)
#   Bcast                binomial scatter + ring allgather          A = lg        B = 2 (p-1)/p
#   Barrier              dissemination                              A = lg        B = 0
#   Exscan, Scan         recursive doubling                         A = lg        B = lg
#   Allgather(v), Gather(v), Scatterv   recursive doubling / binomial tree, n = one rank's part
#                                                                   A = lg        B = p - 1
#   Alltoall             pairwise exchange, n = all a rank sends    A = p - 1     B = (p-1)/p
#   Comm_dup, Comm_split context-id agreement (an allreduce)        A = 2 lg      B = 0
#   Send, Rsend, Isend, Sendrecv  one message                       A = 1         B = 1
#   Recv, Irecv, Imrecv, Wait*, Testall, Mprobe: 0 (the send carries the message's cost)
#   MPI-IO: not modelled (file-system bound, not network): measured and listed, left out of T(p).
# The reduction arithmetic (gamma) is left out.
#
# From measured to projected:
#   - calls(p) and bytes(p) per rank (the busiest rank) of each stage and call are fitted over the
#     measured p >= 2 with the basis {1, 1/p, p} (least squares; fewer terms with fewer points):
#     the constant part is replicated (a gradient allreduce of the model), the 1/p part is divided
#     among ranks (users' rows gathered), the p part grows with p (one message per peer).
#   - compute C(p) = s + w/p (Amdahl) fitted to the measured compute CPU seconds of the busiest rank
#     (CPU, not wall: on this 2-core machine more than 2 ranks share cores, so wall minus MPI time
#     holds time slicing; both are in stages.csv).
#   - strong scaling (the measured problem): C = s + w/P, calls and bytes from their fits at P.
#   - weak scaling (the problem grows with P: users, interactions and steps per rank fixed; catalogue
#     and model fixed): the 1/p parts stay at their one-rank size, C = s + w, calls and bytes =
#     c0 + c1 + c2 P.
#   - alpha and beta fitted to the measured seconds inside the collectives (least squares through
#     the origin over every stage and collective at p >= 2) describe this machine's shared-memory
#     MPI under oversubscription; the projection uses the stated network (ALPHA, BANDWIDTH) instead.
set -eu
D=${1:?usage: analysis/scalefit.sh DIR}
ALPHA=${ALPHA:-2e-6}
BANDWIDTH=${BANDWIDTH:-100e9}
PMAX=${PMAX:-1024}
ls "$D"/counts_p*.csv > /dev/null 2>&1 || { echo "error: no counts_p*.csv in $D (run analysis/scaling.sh)" >&2; exit 1; }
[ -f "$D/steps.csv" ] || { echo "error: $D/steps.csv missing (stage,steps)" >&2; exit 1; }

awk -F, -v D="$D" -v ALPHA="$ALPHA" -v BW="$BANDWIDTH" -v PMAX="$PMAX" '
function ceil_lg(p,   l, q) { l = 0; q = 1; while (q < p) { q *= 2; l++ } return l }
# cost coefficients of one call: A (of alpha) and B (of beta per byte); 0 when not modelled
function costA(op, p,   lg) {
    if (p < 2) return 0
    lg = ceil_lg(p)
    if (op == "Allreduce" || op == "Reduce" || op == "Comm_dup" || op == "Comm_split") return 2 * lg
    if (op == "Bcast" || op == "Barrier" || op == "Exscan" || op == "Scan") return lg
    if (op ~ /^(Allgather|Allgatherv|Gather|Gatherv|Scatterv)$/) return lg
    if (op == "Alltoall") return p - 1
    if (op ~ /^(Send|Rsend|Isend|Sendrecv)$/) return 1
    return 0
}
function costB(op, p) {
    if (p < 2) return 0
    if (op == "Allreduce" || op == "Reduce" || op == "Bcast") return 2 * (p - 1) / p
    if (op == "Exscan" || op == "Scan") return ceil_lg(p)
    if (op ~ /^(Allgather|Allgatherv|Gather|Gatherv|Scatterv)$/) return p - 1
    if (op == "Alltoall") return (p - 1) / p
    if (op ~ /^(Send|Rsend|Isend|Sendrecv)$/) return 1
    return 0
}
function modelled(op) { return costA(op, 2) > 0 || costB(op, 2) > 0 }
function coll(op) { return op !~ /^(Send|Rsend|Isend|Sendrecv|Recv|Irecv|Imrecv|Wait|Waitall|Testall|Mprobe)$/ }
# least squares y ~ sum_j c_j f_j(p) over points (xs[i], ys[i]), i < n; basis {1, 1/p, p} cut to
# k = min(3, n) terms; solves the normal equations by Gaussian elimination with partial pivoting
function basis(j, p) { return j == 0 ? 1 : (j == 1 ? 1 / p : p) }
function lsq(xs, ys, n, c,   k, i, j, l, M, v, piv, t, f) {
    k = n < 3 ? n : 3
    for (j = 0; j < 3; j++) c[j] = 0
    if (k == 0) return
    for (j = 0; j < k; j++) { v[j] = 0; for (l = 0; l < k; l++) M[j, l] = 0 }
    for (i = 0; i < n; i++)
        for (j = 0; j < k; j++) {
            v[j] += basis(j, xs[i]) * ys[i]
            for (l = 0; l < k; l++) M[j, l] += basis(j, xs[i]) * basis(l, xs[i])
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
        for (l = j + 1; l < k; l++) t -= M[j, l] * c[l]
        c[j] = M[j, j] == 0 ? 0 : t / M[j, j]
    }
}
function pos(x) { return x > 0 ? x : 0 }
function human(b) {
    if (b >= 1048576) return sprintf("%.1fM", b / 1048576)
    if (b >= 1024) return sprintf("%.1fk", b / 1024)
    return sprintf("%d", b)
}
FNR == 1 { if (FILENAME ~ /steps\.csv$/) mode = "steps"; else mode = "counts"; next }
mode == "steps" { steps[$1] = $2; next }
{
    p = $1 + 0; r = $2; st = $3; op = $4; kind = $5
    P[p] = 1; S[st] = 1; NR_[p] = p
    if (kind == "stage") { wall[p, st, r] = $9; cpu[p, st, r] = $10; seen[p, st] = 1; next }
    key = p SUBSEP st SUBSEP op
    if (!(key in K)) { K[key] = 1; opkind[op] = kind; OPS[st, op] = 1 }
    ncalls[key] += $6; nbytes[key] += $7; nsec[key] += $9
    if ($6 > mcalls[key]) mcalls[key] = $6
    if ($7 > mbytes[key]) mbytes[key] = $7
    if ($9 > msec[key]) msec[key] = $9
    mpiw[p, st, r] += $9; mpic[p, st, r] += $10
    if (kind == "io") iow[p, st, r] += $9
}
END {
    np = 0; for (p in P) ps[np++] = p + 0
    for (i = 1; i < np; i++) for (j = i; j > 0 && ps[j - 1] > ps[j]; j--) { t = ps[j]; ps[j] = ps[j - 1]; ps[j - 1] = t }
    ns = 0; for (s in S) if (s != "other") sts[ns++] = s
    # pipeline order where known, then by name
    split("synth ingest train-cf align lm prompt explain stream eval", order, " ")
    for (i = 0; i < ns; i++) { rank_[sts[i]] = 99; for (j in order) if (order[j] == sts[i]) rank_[sts[i]] = j }
    for (i = 1; i < ns; i++) for (j = i; j > 0 && (rank_[sts[j - 1]] > rank_[sts[j]] || (rank_[sts[j - 1]] == rank_[sts[j]] && sts[j - 1] > sts[j])); j--) { t = sts[j]; sts[j] = sts[j - 1]; sts[j - 1] = t }
    beta = 8 / BW

    # ---- measured.csv, stages.csv
    f = D "/measured.csv"
    print "ranks,stage,op,kind,calls_max,calls_mean,bytes_max,bytes_mean,seconds_mean,seconds_max" > f
    g = D "/stages.csv"
    print "ranks,stage,steps,wall_s,compute_wall_s,compute_cpu_s,mpi_s,io_s" > g
    for (a = 0; a < np; a++) {
        p = ps[a]
        for (b = -1; b < ns; b++) {
            st = b < 0 ? "other" : sts[b]
            if (!((p, st) in seen)) continue
            w = 0; cw = 0; cc = 0; mw = 0; iw = 0
            for (r = 0; r < p; r++) {
                if (wall[p, st, r] > w) w = wall[p, st, r]
                x = wall[p, st, r] - mpiw[p, st, r]; if (x > cw) cw = x
                x = cpu[p, st, r] - mpic[p, st, r]; if (x > cc) cc = x
                if (mpiw[p, st, r] > mw) mw = mpiw[p, st, r]
                if (iow[p, st, r] > iw) iw = iow[p, st, r]
            }
            W[p, st] = w; CW[p, st] = cw; CC[p, st] = cc; MW[p, st] = mw
            printf "%d,%s,%s,%.6f,%.6f,%.6f,%.6f,%.6f\n", p, st, (st in steps) ? steps[st] : 1, w, cw, cc, mw, iw > g
            for (key in K) {
                split(key, kk, SUBSEP)
                if (kk[1] + 0 != p || kk[2] != st) continue
                printf "%d,%s,%s,%s,%d,%.3f,%d,%.1f,%.6f,%.6f\n", p, st, kk[3], opkind[kk[3]], mcalls[key], ncalls[key] / p,
                       mbytes[key], nbytes[key] / p, nsec[key] / p, msec[key] > f
            }
        }
    }
    close(f); close(g)

    # ---- alpha-beta fitted to the measured collectives (through the origin, two unknowns)
    sxx = 0; sxy = 0; syy = 0; sx1y = 0; sx2y = 0; s11 = 0; s12 = 0; s22 = 0; npt = 0
    for (key in K) {
        split(key, kk, SUBSEP); p = kk[1] + 0; op = kk[3]
        if (p < 2 || !coll(op) || !modelled(op)) continue
        x1 = ncalls[key] / p * costA(op, p); x2 = nbytes[key] / p * costB(op, p); y = nsec[key] / p
        s11 += x1 * x1; s12 += x1 * x2; s22 += x2 * x2; sx1y += x1 * y; sx2y += x2 * y; syy += y * y; npt++
    }
    det = s11 * s22 - s12 * s12
    fa = det != 0 ? (sx1y * s22 - sx2y * s12) / det : 0
    fb = det != 0 ? (sx2y * s11 - sx1y * s12) / det : 0
    if (fb < 0) { fb = 0; fa = s11 ? sx1y / s11 : 0 }
    if (fa < 0) { fa = 0; fb = s22 ? sx2y / s22 : 0 }
    sse = syy - 2 * (fa * sx1y + fb * sx2y) + fa * fa * s11 + 2 * fa * fb * s12 + fb * fb * s22
    r2 = syy > 0 ? 1 - sse / syy : 0
    h = D "/fit.csv"
    print "what,stage,value,note" > h
    printf "alpha_fit,,%.6e,s per latency term; least squares over %d (stage x collective x ranks) cells\n", fa, npt > h
    printf "beta_fit,,%.6e,s per byte term (%.3g GB/s)\n", fb, (fb > 0 ? 1e-9 / fb : 0) > h
    printf "r2_fit,,%.4f,uncentred R^2 of the alpha-beta fit\n", r2 > h
    printf "alpha_proj,,%.6e,s (stated network)\n", ALPHA > h
    printf "beta_proj,,%.6e,s per byte (%.4g Gb/s)\n", beta, BW / 1e9 > h

    # ---- compute model per stage: t(p) = s + w/p over every measured p
    for (b = 0; b < ns; b++) {
        st = sts[b]; n = 0
        for (a = 0; a < np; a++) if ((ps[a], st) in seen) { xs[n] = ps[a]; ys[n] = CC[ps[a], st]; n++ }
        s1 = 0; sq = 0; sqq = 0; sy = 0; sqy = 0
        for (i = 0; i < n; i++) { q = 1 / xs[i]; s1++; sq += q; sqq += q * q; sy += ys[i]; sqy += q * ys[i] }
        dd = s1 * sqq - sq * sq
        cs = dd != 0 ? (sy * sqq - sq * sqy) / dd : (n ? sy / n : 0)
        cw_ = dd != 0 ? (s1 * sqy - sq * sy) / dd : 0
        if (cs < 0) { cs = 0; cw_ = sqq ? sqy / sqq : 0 }
        if (cw_ < 0) { cw_ = 0; cs = n ? sy / n : 0 }
        res = 0; for (i = 0; i < n; i++) { e = ys[i] - cs - cw_ / xs[i]; res += e * e }
        Cs[st] = cs; Cw[st] = cw_
        printf "compute_serial,%s,%.6f,s replicated on every rank (s of s + w/p)\n", st, cs > h
        printf "compute_parallel,%s,%.6f,s divided among ranks (w of s + w/p); rms residual %.4f s\n", st, cw_, n ? sqrt(res / n) : 0 > h
    }

    # ---- calls and bytes per rank of each (stage, call) as functions of p
    for (b = 0; b < ns; b++) {
        st = sts[b]
        for (so in OPS) {
            split(so, kk, SUBSEP); if (kk[1] != st) continue
            op = kk[2]; if (!modelled(op)) continue
            n = 0
            for (a = 0; a < np; a++) if (ps[a] >= 2) { xs[n] = ps[a]; k2 = ps[a] SUBSEP st SUBSEP op; ys[n] = (k2 in K) ? mcalls[k2] : 0; n++ }
            lsq(xs, ys, n, c); CC0[st, op] = c[0]; CC1[st, op] = c[1]; CC2[st, op] = c[2]
            n = 0
            for (a = 0; a < np; a++) if (ps[a] >= 2) { xs[n] = ps[a]; k2 = ps[a] SUBSEP st SUBSEP op; ys[n] = (k2 in K) ? mbytes[k2] : 0; n++ }
            lsq(xs, ys, n, c); BB0[st, op] = c[0]; BB1[st, op] = c[1]; BB2[st, op] = c[2]
            MOD[st, op] = 1
        }
    }

    # ---- projection
    pr = D "/projection.csv"
    print "scaling,stage,ranks,compute_s,comm_s,total_s,speedup,efficiency" > pr
    nq = 0; for (q = 1; q <= PMAX; q *= 2) Q[nq++] = q
    for (m = 0; m < 2; m++) {
        mode_ = m ? "weak" : "strong"
        for (b = 0; b <= ns; b++) {
            st = b < ns ? sts[b] : "all"
            for (iq = 0; iq < nq; iq++) {
                q = Q[iq]; tc = 0; tn = 0
                for (bb = 0; bb < ns; bb++) {
                    s2 = sts[bb]; if (st != "all" && s2 != st) continue
                    tc += m ? Cs[s2] + Cw[s2] : Cs[s2] + Cw[s2] / q
                    for (so in MOD) {
                        split(so, kk, SUBSEP); if (kk[1] != s2) continue
                        op = kk[2]
                        if (m) { nc = pos(CC0[so] + CC1[so] + CC2[so] * q); nb = pos(BB0[so] + BB1[so] + BB2[so] * q) }
                        else { nc = pos(CC0[so] + CC1[so] / q + CC2[so] * q); nb = pos(BB0[so] + BB1[so] / q + BB2[so] * q) }
                        tn += nc * ALPHA * costA(op, q) + nb * beta * costB(op, q)
                    }
                }
                if (q == 1) T1[m, st] = tc + tn
                tt = tc + tn; sp = tt > 0 ? T1[m, st] / tt : 0
                eff = m ? sp : sp / q
                if (m) sp = sp * q
                printf "%s,%s,%d,%.6f,%.6f,%.6f,%.3f,%.4f\n", mode_, st, q, tc, tn, tt, sp, eff > pr
                PT[m, st, q] = tt; PC[m, st, q] = tc; PN[m, st, q] = tn; PE[m, st, q] = eff; PS[m, st, q] = sp
            }
        }
    }
    close(pr)

    # ---- markdown: measured and projected
    md = D "/measured.md"
    printf "Measured (counted through the MPI profiling interface, DM_MPI_COUNT); busiest rank.\n\n" > md
    printf "| stage | ranks | steps | wall s | compute s (wall - MPI) | compute CPU s | MPI s |\n|---|---:|---:|---:|---:|---:|---:|\n" > md
    for (b = 0; b < ns; b++) for (a = 0; a < np; a++) {
        st = sts[b]; p = ps[a]; if (!((p, st) in seen)) continue
        printf "| %s | %d | %s | %.2f | %.2f | %.2f | %.2f |\n", st, p, (st in steps) ? steps[st] : 1, W[p, st], CW[p, st], CC[p, st], MW[p, st] > md
    }
    printf "\nCalls per step x bytes per call (the busiest rank: its calls / steps, its bytes / its calls) of every call with a network cost, per rank count.\n\n| stage | call |" > md
    for (a = 0; a < np; a++) printf " %d |", ps[a] > md
    printf "\n|---|---|" > md
    for (a = 0; a < np; a++) printf "---:|" > md
    printf "\n" > md
    for (b = 0; b < ns; b++) {
        st = sts[b]; stp = (st in steps) && steps[st] > 0 ? steps[st] : 1
        nl = 0; for (so in OPS) { split(so, kk, SUBSEP); if (kk[1] == st && modelled(kk[2])) L[nl++] = kk[2] }
        for (i = 1; i < nl; i++) for (j = i; j > 0 && L[j - 1] > L[j]; j--) { t = L[j]; L[j] = L[j - 1]; L[j - 1] = t }
        for (i = 0; i < nl; i++) {
            printf "| %s | %s |", st, L[i] > md
            for (a = 0; a < np; a++) {
                k2 = ps[a] SUBSEP st SUBSEP L[i]
                if (!(k2 in K) || mcalls[k2] == 0) { printf " - |" > md; continue }
                printf " %.4g x %s |", mcalls[k2] / stp, human(mbytes[k2] / mcalls[k2]) > md
            }
            printf "\n" > md
        }
    }
    close(md)
    pm = D "/projection.md"
    printf "PROJECTION from the measured counts (not a measurement): alpha = %g us, %g Gb/s (beta = %.3g ns/byte); compute from s + w/p fitted to the measured compute CPU time; MPI-IO not included.\n\n", ALPHA * 1e6, BW / 1e9, beta * 1e9 > pm
    for (m = 0; m < 2; m++) {
        printf "%s scaling (%s): total seconds (efficiency)\n\n| stage |", m ? "Weak" : "Strong", m ? "problem grows with the ranks" : "the measured problem" > pm
        for (iq = 0; iq < nq; iq++) printf " %d |", Q[iq] > pm
        printf "\n|---|" > pm
        for (iq = 0; iq < nq; iq++) printf "---:|" > pm
        printf "\n" > pm
        for (b = 0; b <= ns; b++) {
            st = b < ns ? sts[b] : "all"
            printf "| %s |", st > pm
            for (iq = 0; iq < nq; iq++) printf " %.3g (%.2f) |", PT[m, st, Q[iq]], PE[m, st, Q[iq]] > pm
            printf "\n" > pm
        }
        printf "\n" > pm
    }
    printf "Fitted to this machine (shared-memory MPI, 2 cores, oversubscribed beyond 2 ranks): alpha %.3g us, beta %.3g ns/byte (R^2 %.3f).\n", fa * 1e6, fb * 1e9, r2 > pm
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
}' "$D/steps.csv" "$D"/counts_p*.csv

# ---- the figure: gnuplot, in the report's style (analysis/rpt_gp.c: Okabe-Ito colours, cairo
# terminals, PNG at 300 dpi and PDF, 3.4 in wide, sans 8 pt)
stages=$(cat "$D/scaling.stages")
rm -f "$D/scaling.stages"
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
  echo 'set yrange [0:1.05]'
  echo "set title \"Projection from measured counts: alpha ${ALPHA} s, $(awk -v b="$BANDWIDTH" 'BEGIN{printf "%g", b/1e9}') Gb/s\" noenhanced"
  plot="plot"
  k=0
  for s in $stages; do
    sep=""; if [ $k -gt 0 ]; then sep=","; fi
    plot="$plot$sep \"scaling.dat\" index $k using 1:3 with linespoints lt $((k + 1)) title \"$s strong\", \"scaling.dat\" index $k using 1:5 with lines lt $((k + 1)) dt 2 title \"$s weak\""
    k=$((k + 1))
  done
  echo 'set terminal pngcairo size 1020,694 noenhanced font "sans,15.2" linewidth 2.4'
  echo 'set output "scaling.png"'
  echo "$plot"
  echo 'set terminal pdfcairo size 3.4in,2.31in noenhanced font "sans,8" linewidth 0.8'
  echo 'set output "scaling.pdf"'
  echo 'replot'
} > "$D/scaling.gp"
if command -v gnuplot > /dev/null; then (cd "$D" && gnuplot scaling.gp) || { echo "error: gnuplot failed on $D/scaling.gp" >&2; exit 1; }
else echo "note: gnuplot not installed; $D/scaling.gp written, not drawn" >&2; fi
echo "scalefit: $D/{measured.md,stages.csv,fit.csv,projection.csv,projection.md,scaling.png}"
