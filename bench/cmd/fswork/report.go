package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"

	"sandbox/bench/internal/stat"
)

// Cell is one workload's median in one place.
type Cell struct {
	Median float64 `json:"median"`
	Runs   int     `json:"runs"`
	// Slowdown is how many times slower than the baseline place: the time
	// ratio (place / baseline) for "ms", the rate ratio (baseline / place)
	// for rates. 0 when there is no baseline number.
	Slowdown float64 `json:"x_baseline,omitempty"`
}

// Summary is the table: Workloads × Places.
type Summary struct {
	Baseline  string                     `json:"baseline"`
	Places    []string                   `json:"places"`
	Workloads []string                   `json:"workloads"`
	Units     map[string]string          `json:"units"`
	Cells     map[string]map[string]Cell `json:"cells"` // workload → place → cell
	Skipped   []string                   `json:"skipped,omitempty"`
}

func readRuns(r io.Reader) ([]Run, error) {
	var runs []Run
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var run Run
		if err := json.Unmarshal(sc.Bytes(), &run); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		runs = append(runs, run)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(runs) == 0 {
		return nil, errors.New("no runs in the input")
	}
	return runs, nil
}

// summarize groups the runs by workload and place (each in order of first
// appearance) and takes medians and slowdowns against baseline.
func summarize(runs []Run, baseline string) Summary {
	s := Summary{Baseline: baseline, Units: map[string]string{}, Cells: map[string]map[string]Cell{}}
	values := map[string]map[string][]float64{}
	for _, r := range runs {
		if !slices.Contains(s.Places, r.Place) {
			s.Places = append(s.Places, r.Place)
		}
		for _, sk := range r.Skipped {
			if m := r.Place + ": " + sk; !slices.Contains(s.Skipped, m) {
				s.Skipped = append(s.Skipped, m)
			}
		}
		for _, res := range r.Results {
			if _, ok := values[res.Name]; !ok {
				s.Workloads = append(s.Workloads, res.Name)
				values[res.Name] = map[string][]float64{}
				s.Units[res.Name] = res.Unit
			}
			values[res.Name][r.Place] = append(values[res.Name][r.Place], res.Value)
		}
	}
	for _, w := range s.Workloads {
		s.Cells[w] = map[string]Cell{}
		for p, v := range values[w] {
			s.Cells[w][p] = Cell{Median: stat.Median(v), Runs: len(v)}
		}
		base, ok := s.Cells[w][baseline]
		if !ok || base.Median <= 0 {
			continue
		}
		for p, c := range s.Cells[w] {
			if c.Median <= 0 {
				continue
			}
			if s.Units[w] == "ms" {
				c.Slowdown = c.Median / base.Median
			} else {
				c.Slowdown = base.Median / c.Median
			}
			s.Cells[w][p] = c
		}
	}
	return s
}

// geomean of the slowdowns of one place over the workloads that have one.
func (s Summary) geomean(place string) (float64, bool) {
	sum, n := 0.0, 0
	for _, w := range s.Workloads {
		if c, ok := s.Cells[w][place]; ok && c.Slowdown > 0 {
			sum += math.Log(c.Slowdown)
			n++
		}
	}
	if n == 0 {
		return 0, false
	}
	return math.Exp(sum / float64(n)), true
}

func number(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// markdown: one row per workload, one column per place; each cell is the
// median and, off the baseline, its slowdown.
func (s Summary) markdown() string {
	var b strings.Builder
	b.WriteString("| workload | unit |")
	for _, p := range s.Places {
		fmt.Fprintf(&b, " %s |", p)
	}
	b.WriteString("\n|:---|:---|" + strings.Repeat("---:|", len(s.Places)) + "\n")
	for _, w := range s.Workloads {
		fmt.Fprintf(&b, "| %s | %s |", w, s.Units[w])
		for _, p := range s.Places {
			c, ok := s.Cells[w][p]
			switch {
			case !ok:
				b.WriteString(" – |")
			case p == s.Baseline || c.Slowdown == 0:
				fmt.Fprintf(&b, " %s |", number(c.Median))
			default:
				fmt.Fprintf(&b, " %s (%.2f×) |", number(c.Median), c.Slowdown)
			}
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "| geometric mean of × %s | |", s.Baseline)
	for _, p := range s.Places {
		if g, ok := s.geomean(p); ok {
			fmt.Fprintf(&b, " %.2f× |", g)
		} else {
			b.WriteString(" – |")
		}
	}
	b.WriteString("\n")
	return b.String()
}

func reportCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("fswork report", flag.ContinueOnError)
	in := fs.String("in", "", "JSON lines written by fswork run (required)")
	baseline := fs.String("baseline", "host", "place the ratios are taken to")
	mdPath := fs.String("md", "", "also write the table to this file")
	jsonPath := fs.String("json", "", "also write medians and ratios as JSON to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("-in is required")
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	runs, err := readRuns(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	s := summarize(runs, *baseline)
	if !slices.Contains(s.Places, *baseline) {
		fmt.Fprintf(os.Stderr, "fswork: no place named %q: no ratios\n", *baseline)
	}
	md := s.markdown()
	if _, err := io.WriteString(stdout, md); err != nil {
		return err
	}
	if *mdPath != "" {
		if err := os.WriteFile(*mdPath, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if *jsonPath != "" {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
