package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"

	"sandbox/bench/internal/stat"
)

// sample is one timed pull.
type sample struct {
	seconds float64
	rssKB   float64 // -1: not measured
}

// report prints medians of results.tsv per tool and sandbox ÷ podman.
func report(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("in", "", "results.tsv: tool, round, seconds, max RSS in kB (or -)")
	md := fs.String("md", "", "also write the tables to this file")
	goal := fs.Float64("goal", 1.0, "goal for sandbox ÷ podman (time)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("report needs -in")
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	by, order, err := parseResults(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	text := formatReport(by, order, *goal)
	if _, err := io.WriteString(stdout, text); err != nil {
		return err
	}
	if *md != "" {
		return os.WriteFile(*md, []byte(text), 0o644)
	}
	return nil
}

func parseResults(r io.Reader) (map[string][]sample, []string, error) {
	by := map[string][]sample{}
	var order []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) != 4 {
			return nil, nil, fmt.Errorf("line %d: want 4 tab-separated fields, got %d", n, len(fields))
		}
		sec, err := strconv.ParseFloat(fields[2], 64)
		if err != nil || sec < 0 {
			return nil, nil, fmt.Errorf("line %d: bad seconds %q", n, fields[2])
		}
		rss := -1.0
		if fields[3] != "-" {
			if rss, err = strconv.ParseFloat(fields[3], 64); err != nil || rss < 0 {
				return nil, nil, fmt.Errorf("line %d: bad max RSS %q", n, fields[3])
			}
		}
		tool := fields[0]
		if _, ok := by[tool]; !ok {
			order = append(order, tool)
		}
		by[tool] = append(by[tool], sample{sec, rss})
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(order) == 0 {
		return nil, nil, errors.New("no results")
	}
	return by, order, nil
}

// median is stat.Median, -1 for no values (no RSS measured).
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return -1
	}
	return stat.Median(xs)
}

// stats returns the median and range of the times and the median of the
// measured max RSS values (-1 when none was measured).
func stats(ss []sample) (med, lo, hi, rss float64) {
	var ts, rs []float64
	for _, s := range ss {
		ts = append(ts, s.seconds)
		if s.rssKB >= 0 {
			rs = append(rs, s.rssKB)
		}
	}
	sort.Float64s(ts)
	return median(ts), ts[0], ts[len(ts)-1], median(rs)
}

func formatReport(by map[string][]sample, order []string, goal float64) string {
	var b strings.Builder
	b.WriteString("| tool | runs | median s | min–max s | peak RSS MB (median) |\n|:---|---:|---:|---:|---:|\n")
	meds := map[string][2]float64{}
	for _, tool := range order {
		med, lo, hi, rss := stats(by[tool])
		meds[tool] = [2]float64{med, rss}
		rssCell := "—"
		if rss >= 0 {
			rssCell = fmt.Sprintf("%.1f", rss/1024)
		}
		fmt.Fprintf(&b, "| %s | %d | %.2f | %.2f–%.2f | %s |\n", tool, len(by[tool]), med, lo, hi, rssCell)
	}
	sb, okS := meds["sandbox"]
	pm, okP := meds["podman"]
	b.WriteString("\n| goal | measured | met |\n|:---|---:|:---|\n")
	if !okS || !okP || pm[0] <= 0 {
		fmt.Fprintf(&b, "| sandbox ÷ podman (time) ≤ %.2f | — | not measured (needs both tools) |\n", goal)
		return b.String()
	}
	ratio := sb[0] / pm[0]
	met := "met"
	if ratio > goal {
		met = "not met"
	}
	fmt.Fprintf(&b, "| sandbox ÷ podman (time) ≤ %.2f | %.2f | %s |\n", goal, ratio, met)
	if sb[1] >= 0 && pm[1] > 0 {
		fmt.Fprintf(&b, "| sandbox ÷ podman (peak RSS), no goal | %.2f | — |\n", sb[1]/pm[1])
	}
	return b.String()
}
