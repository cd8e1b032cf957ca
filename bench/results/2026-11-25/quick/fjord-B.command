taskset -c 0 /work/wt-bench/build/release/src/app/fjord start --smp 1 --log-dirs /tmp/fjord-compare.zDUFM0/fjord-B/data --override listeners=PLAINTEXT://127.0.0.1:43463 --override num.partitions=16
