#!/usr/bin/python3
# The seed's consumer, ported to Python 3 (bytes → str, print()), unchanged otherwise:
# BRPOP one event at a time, split at the first comma, print "timestamp args".
# The only addition: stop after N events (argv[2]) so that a benchmark can time it.
import sys

import redis


def main():
    r = redis.Redis(port=int(sys.argv[1]))
    left = int(sys.argv[2])
    while left > 0:
        _, event = r.brpop("pixel")
        timestamp, args = event.decode("utf-8", "replace").split(",", 1)
        print(timestamp, args)
        left -= 1


if __name__ == "__main__":
    main()
