taskset -c 0 /work/wt-bench/build/release/src/app/fjord start --smp 1 --log-dirs /tmp/fjord-compare.LJO0wk/fjord-B/data --override listeners=PLAINTEXT://127.0.0.1:50843 --override num.partitions=16
