// Command ratios prints a start-up benchmark table from hyperfine's JSON
// export: command, median, mean ± σ, and the ratio of each median to the
// baseline's median.
//
//	ratios -json startup.json [-baseline bwrap] [-md summary.md]
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
)

// result is the part of one hyperfine result that the table needs.
type result struct {
	Command string    `json:"command"`
	Mean    float64   `json:"mean"`
	Stddev  float64   `json:"stddev"`
	Median  float64   `json:"median"`
	Min     float64   `json:"min"`
	Max     float64   `json:"max"`
	Times   []float64 `json:"times"`
}

type export struct {
	Results []result `json:"results"`
}

// row is one line of the table, in milliseconds.
type row struct {
	Command string
	Median  float64
	Mean    float64
	Stddev  float64
	Runs    int
	Ratio   float64 // median / baseline median; 0 when there is no baseline
}

func parse(r io.Reader) ([]result, error) {
	var e export
	if err := json.NewDecoder(r).Decode(&e); err != nil {
		return nil, fmt.Errorf("decoding hyperfine JSON: %w", err)
	}
	if len(e.Results) == 0 {
		return nil, errors.New("hyperfine JSON has no results")
	}
	return e.Results, nil
}

// rows converts results to milliseconds and computes the ratios against the
// first result whose command starts with baseline.
func rows(results []result, baseline string) ([]row, bool) {
	var base float64
	found := false
	for _, r := range results {
		if baseline != "" && strings.HasPrefix(r.Command, baseline) && r.Median > 0 {
			base, found = r.Median, true
			break
		}
	}
	out := make([]row, 0, len(results))
	for _, r := range results {
		w := row{
			Command: r.Command,
			Median:  r.Median * 1000,
			Mean:    r.Mean * 1000,
			Stddev:  r.Stddev * 1000,
			Runs:    len(r.Times),
		}
		if found {
			w.Ratio = r.Median / base
		}
		out = append(out, w)
	}
	return out, found
}

func ratio(w row, found bool) string {
	if !found {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", w.Ratio)
}

// pad pads s with spaces to n runes: on the left when n > 0, on the right
// when n < 0.
func pad(s string, n int) string {
	left := n > 0
	n = max(n, -n) - utf8.RuneCountInString(s)
	if n <= 0 {
		return s
	}
	if left {
		return strings.Repeat(" ", n) + s
	}
	return s + strings.Repeat(" ", n)
}

func writeText(out io.Writer, rs []row, baseline string, found bool) error {
	width := len("command")
	for _, w := range rs {
		width = max(width, utf8.RuneCountInString(w.Command))
	}
	var b strings.Builder
	line := func(cmd, median, mean, runs, ratio string) {
		b.WriteString(pad(cmd, -width) + "  " + pad(median, 9) + "  " +
			pad(mean, 15) + "  " + pad(runs, 4) + "  " + ratio + "\n")
	}
	line("command", "median ms", "mean ± σ ms", "runs", "× "+baseline+" (median)")
	for _, w := range rs {
		line(w.Command, fmt.Sprintf("%.2f", w.Median),
			fmt.Sprintf("%.2f ± %.2f", w.Mean, w.Stddev),
			fmt.Sprint(w.Runs), ratio(w, found))
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func writeMarkdown(out io.Writer, rs []row, baseline string, found bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "| command | median ms | mean ± σ ms | runs | × %s median |\n", baseline)
	b.WriteString("|:---|---:|---:|---:|---:|\n")
	for _, w := range rs {
		fmt.Fprintf(&b, "| `%s` | %.2f | %.2f ± %.2f | %d | %s |\n",
			w.Command, w.Median, w.Mean, w.Stddev, w.Runs, ratio(w, found))
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("ratios", flag.ContinueOnError)
	jsonPath := fs.String("json", "", "hyperfine --export-json file (required)")
	baseline := fs.String("baseline", "bwrap", "command name prefix of the baseline")
	mdPath := fs.String("md", "", "also write the table as Markdown to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *jsonPath == "" {
		return errors.New("-json is required")
	}
	f, err := os.Open(*jsonPath)
	if err != nil {
		return err
	}
	defer f.Close()
	results, err := parse(f)
	if err != nil {
		return err
	}
	rs, found := rows(results, *baseline)
	if !found {
		fmt.Fprintf(os.Stderr, "ratios: no result named %q*: ratios are n/a\n", *baseline)
	}
	if err := writeText(stdout, rs, *baseline, found); err != nil {
		return err
	}
	if *mdPath != "" {
		var b strings.Builder
		if err := writeMarkdown(&b, rs, *baseline, found); err != nil {
			return err
		}
		if err := os.WriteFile(*mdPath, []byte(b.String()), 0o644); err != nil {
			return err
		}
	}
	return nil
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ratios:", err)
		os.Exit(1)
	}
}
