#!/bin/bash
# Three repeats of each timing binary, sequentially (2 shared cores: do not overlap).
cd "$(dirname "$0")"
for i in 1 2 3; do
  ./rng/target/release/measure_rng > raw/rng_time_$i.txt 2>&1
  ./dual/target/release/measure_dual > raw/dual_time_$i.txt 2>&1
  ./dual/target/release/measure_dual quad > raw/dual_timeq_$i.txt 2>&1
  ./quad/target/release/measure_quad > raw/quad_time_$i.txt 2>&1
done
echo done
