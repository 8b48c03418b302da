#!/bin/bash
# Reward 1 when /app/hello.txt says "Hello, world!", else 0.
if [ "$(cat /app/hello.txt 2>/dev/null)" = "Hello, world!" ]; then
    echo 1 > /logs/verifier/reward.txt
    echo "hello.txt is right"
else
    echo 0 > /logs/verifier/reward.txt
    echo "hello.txt is missing or wrong"
fi
