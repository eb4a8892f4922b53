package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"sandbox/bench/internal/stat"
)

// tools are the report's columns, in order.
var tools = []string{"base", "new", "bwrap"}

// memRow is one line of the memory table: a quantity of one process set, in
// MB (MiB: VmRSS kB / 1024) per tool, the median over the samples.
type memRow struct {
	Set     string              `json:"set"` // "" for the holder's line
	What    string              `json:"what"`
	MB      map[string]*float64 `json:"mb"`
	Samples map[string]int      `json:"samples"`
}

type memReport struct {
	Unit   string   `json:"unit"`
	GoalMB float64  `json:"goal_mb"`
	Rows   []memRow `json:"rows"`
	Goals  []string `json:"goals"`
}

func readSamples(r io.Reader) ([]sample, error) {
	var out []sample
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var s sample
		if err := json.Unmarshal([]byte(line), &s); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if s.Set == "" || s.Tool == "" {
			return nil, fmt.Errorf("line %d: no set or tool", n)
		}
		out = append(out, s)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, errors.New("no samples")
	}
	return out, nil
}

// holderRow is the holder's line: shared by all runs, so in no set's sum.
const holderRow = "holder, shared by all runs"

// anonRow is the anonymous part of supervisor + init (RssAnon): what a
// further sandbox adds beside the pages of programs all runs share.
const anonRow = "supervisor + init, anonymous (RssAnon)"

// build makes the rows: per set (in first-seen order) supervisor, init,
// their sum, its anonymous part and, where any sample had one, the network
// helpers; last, when a holder ran, its line (the median over the samples
// that saw it).
func build(samples []sample, goalMB float64) memReport {
	var sets []string
	seen := map[string]bool{}
	by := map[string]map[string][]sample{}
	for _, s := range samples {
		if !seen[s.Set] {
			seen[s.Set] = true
			sets = append(sets, s.Set)
			by[s.Set] = map[string][]sample{}
		}
		by[s.Set][s.Tool] = append(by[s.Set][s.Tool], s)
	}
	rep := memReport{Unit: "MB (MiB, VmRSS kB / 1024), median of the samples", GoalMB: goalMB}
	quantities := []struct {
		what string
		kb   func(sample) int64
	}{
		{"supervisor", func(s sample) int64 { return s.SupervisorKB }},
		{"init", func(s sample) int64 { return s.InitKB }},
		{"supervisor + init", func(s sample) int64 { return s.SupervisorKB + s.InitKB }},
		{anonRow, func(s sample) int64 { return s.AnonKB }},
		{"helpers", func(s sample) int64 { return s.HelpersKB }},
	}
	for _, set := range sets {
		var helperNames []string
		hasHelpers := false
		for _, ss := range by[set] {
			for _, s := range ss {
				if s.HelpersKB > 0 {
					hasHelpers = true
				}
				for _, h := range s.Helpers {
					if !contains(helperNames, h) {
						helperNames = append(helperNames, h)
					}
				}
			}
		}
		for _, q := range quantities {
			what := q.what
			if what == "helpers" {
				if !hasHelpers {
					continue
				}
				what += " (" + strings.Join(helperNames, ", ") + ")"
			}
			row := memRow{Set: set, What: what, MB: map[string]*float64{}, Samples: map[string]int{}}
			for _, tool := range tools {
				ss := by[set][tool]
				if len(ss) == 0 {
					row.MB[tool] = nil
					continue
				}
				xs := make([]float64, len(ss))
				for i, s := range ss {
					xs[i] = float64(q.kb(s)) / 1024
				}
				m := stat.Median(xs)
				row.MB[tool] = &m
				row.Samples[tool] = len(ss)
			}
			rep.Rows = append(rep.Rows, row)
			if q.what == "supervisor + init" && goalMB > 0 {
				for _, tool := range []string{"new", "base"} {
					if v := row.MB[tool]; v != nil {
						met := "met"
						if *v > goalMB {
							met = "not met"
						}
						rep.Goals = append(rep.Goals, fmt.Sprintf("supervisor + init ≤ %g MB, %s, %s: %.1f MB, %s", goalMB, set, tool, *v, met))
					}
				}
			}
		}
	}
	holder := memRow{What: holderRow, MB: map[string]*float64{}, Samples: map[string]int{}}
	seenHolder := false
	for _, tool := range tools {
		var xs []float64
		for _, s := range samples {
			if s.Tool == tool && s.HolderKB > 0 {
				xs = append(xs, float64(s.HolderKB)/1024)
			}
		}
		if len(xs) == 0 {
			holder.MB[tool] = nil
			continue
		}
		m := stat.Median(xs)
		holder.MB[tool], holder.Samples[tool], seenHolder = &m, len(xs), true
	}
	if seenHolder {
		rep.Rows = append(rep.Rows, holder)
	}
	return rep
}

// label is a row's first cell: the holder's line belongs to no set.
func (row memRow) label() string {
	if row.Set == "" {
		return row.What
	}
	return row.Set + ": " + row.What
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

func cell(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f", *v)
}

func (r memReport) text() string {
	table := [][]string{{"process set", "base MB", "new MB", "bwrap MB"}}
	for _, row := range r.Rows {
		table = append(table, []string{row.label(),
			cell(row.MB["base"]), cell(row.MB["new"]), cell(row.MB["bwrap"])})
	}
	widths := make([]int, 4)
	for _, t := range table {
		for i, c := range t {
			widths[i] = max(widths[i], len([]rune(c)))
		}
	}
	var b strings.Builder
	for _, t := range table {
		for i, c := range t {
			n := widths[i] - len([]rune(c))
			if i == 0 {
				b.WriteString(c + strings.Repeat(" ", n))
			} else {
				b.WriteString("  " + strings.Repeat(" ", n) + c)
			}
		}
		b.WriteString("\n")
	}
	for _, g := range r.Goals {
		b.WriteString("goal: " + g + "\n")
	}
	return b.String()
}

func (r memReport) markdown() string {
	var b strings.Builder
	b.WriteString("| process set | base MB | new MB | bwrap MB |\n|:---|---:|---:|---:|\n")
	for _, row := range r.Rows {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.label(),
			cell(row.MB["base"]), cell(row.MB["new"]), cell(row.MB["bwrap"]))
	}
	if len(r.Goals) > 0 {
		b.WriteString("\n")
		for _, g := range r.Goals {
			b.WriteString("- goal: " + g + "\n")
		}
	}
	return b.String()
}

func cmdReport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	in := fs.String("in", "", "samples, one JSON line each (required)")
	md := fs.String("md", "", "also write the table as Markdown here")
	js := fs.String("json", "", "also write the rows as JSON here")
	goalMB := fs.Float64("goal-mb", 8, "goal for supervisor + init, MB (0: none)")
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
	samples, err := readSamples(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	rep := build(samples, *goalMB)
	if _, err := io.WriteString(stdout, rep.text()); err != nil {
		return err
	}
	if *md != "" {
		if err := os.WriteFile(*md, []byte(rep.markdown()), 0o644); err != nil {
			return err
		}
	}
	if *js != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*js, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
