#!/usr/bin/env bash
# Draws PNG plots (gnuplot) from the latest run in bench/results/*.tsv into bench/plots/.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench/plots
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
latest() { tail -n 1 "$1" | cut -f1; }  # the stamp of the last row = the latest run

if [ -f bench/results/append.tsv ]; then
  s=$(latest bench/results/append.tsv)
  awk -F'\t' -v s="$s" '$1 == s && $6 == 8 {print $5 "\t" $8}' bench/results/append.tsv >"$tmp/append.dat"
  if [ -s "$tmp/append.dat" ]; then
    gnuplot <<GP
set terminal pngcairo size 800,420 font "sans,10"
set output "bench/plots/append.png"
set title "Append throughput, pgbench 8 clients (TPS, higher is better) — $s"
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
set grid ytics
set xtics rotate by -20
plot "$tmp/append.dat" using 0:2:xtic(1) with boxes notitle lc rgb "#2563eb", \
     "" using 0:2:2 with labels offset 0,0.7 notitle
GP
  fi
fi

if [ -f bench/results/fanout.tsv ]; then
  s=$(latest bench/results/fanout.tsv)
  # The newest measurement of each (server, mode, subscribers): a quick run refreshes the small
  # sizes without hiding the large ones of the last full run.
  awk -F'\t' '{last[$3 "\t" $4 "\t" $5] = $0} END {for (k in last) print last[k]}' \
    bench/results/fanout.tsv >"$tmp/fanout-latest.tsv"
  for kind in evstreamd nchan node node-pg; do
    awk -F'\t' -v k="$kind" '$3 == k && $4 == "latency" {print $5 "\t" $14 "\t" $17}' \
      "$tmp/fanout-latest.tsv" | sort -n >"$tmp/lat-$kind.dat"
    awk -F'\t' -v k="$kind" '$3 == k && $4 == "throughput" && $5 == 1000 {print k "\t" $12}' \
      "$tmp/fanout-latest.tsv" >>"$tmp/thr.dat"
  done
  gnuplot <<GP
set terminal pngcairo size 800,420 font "sans,10"
set output "bench/plots/fanout_p99.png"
set title "Publish→receive p99 latency, 100 events/s (ms, lower is better) — $s"
set logscale x
set logscale y
set grid
set key top left
set xlabel "subscribers"
set ylabel "ms (log scale)"
plot for [k in "evstreamd nchan node node-pg"] "$tmp/lat-".k.".dat" using 1:(\$1 <= 1000 ? \$2 : 1/0) with linespoints title k
unset logscale y
set output "bench/plots/fanout_rss.png"
set title "Server RSS per idle connection (KiB, lower is better) — $s"
set ylabel "KiB per connection"
plot for [k in "evstreamd nchan node node-pg"] "$tmp/lat-".k.".dat" using 1:3 with linespoints title k
GP
  if [ -s "$tmp/thr.dat" ]; then
    gnuplot <<GP
set terminal pngcairo size 800,420 font "sans,10"
set output "bench/plots/fanout_throughput.png"
set title "Delivered events/s, 1000 subscribers, publisher flat out (higher is better) — $s"
set style fill solid 0.8 border -1
set boxwidth 0.6
set yrange [0:*]
set grid ytics
plot "$tmp/thr.dat" using 0:2:xtic(1) with boxes notitle lc rgb "#16a34a", "" using 0:2:2 with labels offset 0,0.7 notitle
GP
  fi
fi
# The soak: RSS and open fds of evstreamd over time, for the latest full run (else the latest run).
if [ -f bench/results/soak.tsv ] && [ "$(wc -l <bench/results/soak.tsv)" -gt 1 ]; then
  s=$(awk -F'\t' 'NR > 1 && $3 == "full" {s = $1} END {print s}' bench/results/soak.tsv)
  [ -n "$s" ] || s=$(latest bench/results/soak.tsv)
  awk -F'\t' -v s="$s" '$1 == s {print $4 "\t" $5 / 1024 "\t" $6 "\t" $7}' bench/results/soak.tsv >"$tmp/soak.dat"
  mode=$(awk -F'\t' -v s="$s" '$1 == s {print $3; exit}' bench/results/soak.tsv)
  gnuplot <<GP
set terminal pngcairo size 800,420 font "sans,10"
set output "bench/plots/soak.png"
set title "Soak ($mode run $s): evstreamd RSS and open file descriptors"
set grid
set key bottom right
set xlabel "seconds"
set ylabel "RSS (MiB)"
set y2label "open fds"
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
set y2tics
plot "$tmp/soak.dat" using 1:2 with linespoints title "RSS (MiB)" lc rgb "#2563eb", \
     "" using 1:3 axes x1y2 with linespoints title "open fds" lc rgb "#dc2626"
GP
fi
ls bench/plots/
