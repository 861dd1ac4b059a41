#!/bin/bash
cd "$(dirname "$0")"
# Each candidate is an empty crate depending only on it (its manifest is <name>.Cargo.toml).
for c in randmin peroxide quadrs; do
  mkdir -p $c/src && cp $c.Cargo.toml $c/Cargo.toml && echo "fn main() {}" > $c/src/main.rs
done
for c in randmin peroxide quadrs; do (cd $c && cargo fetch -q); done
for i in 1 2 3; do for c in randmin peroxide quadrs; do
  rm -rf $c/target
  flock /tmp/clvrs-build.lock bash -c "cd $c; s=\$(date +%s.%N); cargo build --release -q 2>/dev/null; e=\$(date +%s.%N); echo BUILD $c run $i: \$(echo \"\$e - \$s\" | bc) s"
done; done > times.txt 2>&1
(cd peroxide && cargo tree -e normal --prefix none | sort -u | wc -l) > ndeps.txt
(cd quadrs && cargo tree -e normal --prefix none | sort -u | wc -l) >> ndeps.txt
(cd randmin && cargo tree -e normal --prefix none | sort -u | wc -l) >> ndeps.txt
echo done >> times.txt
