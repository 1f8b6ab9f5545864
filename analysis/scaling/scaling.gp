# scaling.gp: written by analysis/scalefit.sh. A PROJECTION from measured MPI counts (alpha-beta model),
# not a measurement. Data: scaling.dat (one block per stage: ranks, strong total s, strong efficiency,
# weak total s, weak efficiency). Rerun: gnuplot scaling.gp in this directory.
set datafile separator "\t"
set encoding utf8
set border 3 lw 1
set tics nomirror out scale 0.6
set grid ytics lc rgb "#dddddd" lw 0.6 dt 1
set key outside right center vertical Left reverse samplen 1.2 spacing 1.1 width -1 noenhanced
set linetype 1 lc rgb "#0072B2" lw 1.6 pt 5 ps 0.5
set linetype 2 lc rgb "#D55E00" lw 1.6 pt 7 ps 0.5
set linetype 3 lc rgb "#009E73" lw 1.6 pt 9 ps 0.5
set linetype 4 lc rgb "#CC79A7" lw 1.6 pt 11 ps 0.5
set linetype 5 lc rgb "#E69F00" lw 1.6 pt 13 ps 0.5
set linetype 6 lc rgb "#56B4E9" lw 1.6 pt 15 ps 0.5
set linetype 7 lc rgb "#000000" lw 1.6 pt 17 ps 0.5
set linetype 8 lc rgb "#882255" lw 1.6 pt 19 ps 0.5
set logscale x 2
set xrange [1:1024]
set xlabel "MPI ranks" noenhanced
set ylabel "parallel efficiency" noenhanced
set yrange [0:*]
set arrow 1 from 8, graph 0 to 8, graph 1 nohead lc rgb "#999999" dt 3
set label 1 "measured | projected" at 8, graph 0.97 center offset 0, 0.6 tc rgb "#666666" noenhanced
set title "Strong scaling: projection from measured counts (alpha 2 us, 100 Gb/s)" noenhanced
set terminal pngcairo size 1020,694 noenhanced font "sans,15.2" linewidth 2.4
set output "scaling.png"
plot "scaling.dat" index 0 using 1:3 with linespoints lt 1 title "synth", "scaling.dat" index 1 using 1:3 with linespoints lt 2 title "train-cf", "scaling.dat" index 2 using 1:3 with linespoints lt 3 title "align", "scaling.dat" index 3 using 1:3 with linespoints lt 4 title "eval", "scaling.dat" index 4 using 1:3 with linespoints lt 5 title "all"
set terminal pdfcairo size 3.4in,2.31in noenhanced font "sans,8" linewidth 0.8
set output "scaling.pdf"
replot
set title "Weak scaling: projection from measured counts (alpha 2 us, 100 Gb/s)" noenhanced
set terminal pngcairo size 1020,694 noenhanced font "sans,15.2" linewidth 2.4
set output "scaling_weak.png"
plot "scaling.dat" index 0 using 1:5 with linespoints lt 1 title "synth", "scaling.dat" index 1 using 1:5 with linespoints lt 2 title "train-cf", "scaling.dat" index 2 using 1:5 with linespoints lt 3 title "align", "scaling.dat" index 3 using 1:5 with linespoints lt 4 title "eval", "scaling.dat" index 4 using 1:5 with linespoints lt 5 title "all"
set terminal pdfcairo size 3.4in,2.31in noenhanced font "sans,8" linewidth 0.8
set output "scaling_weak.pdf"
replot
