#!/bin/sh
# What left-padder is meant to do: pad $2 on the left to width $1.
printf "%${1}s\n" "$2"
