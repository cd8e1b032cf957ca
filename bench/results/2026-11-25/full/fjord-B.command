taskset -c 0 /work/main/build/release/src/app/fjord start --smp 1 --log-dirs /tmp/fjord-compare.ibJn3K/fjord-B/data --override listeners=PLAINTEXT://127.0.0.1:49375 --override num.partitions=16
